import t from 'tap'
import { request as httpRequest } from 'node:http'
import { readFile } from 'node:fs/promises'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis } from './helpers/fixtures.js'
import { startGatewayProcess } from './helpers/gateway-process.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, post, request } from './helpers/mcp-http.js'
import { sample } from './helpers/metrics.js'
import { freePort } from './helpers/redis-server.js'
import { lastId, openStream, type OpenStream } from './helpers/sse-stream.js'
import { withStreamingUpstream, type StreamedCallArguments } from './helpers/streaming-upstream.js'

/*
 * A call whose client left runs on for a resume (docs/streams.md, "Limits"), so it holds an upstream
 * request, gateway memory and Redis: all of it bounded. Against real processes: a real Redis, a
 * real upstream that streams as long as it is let, and (for the memory figures) the gateway as its
 * own process, read from /proc.
 */

const VERSION = '2025-11-25'
const WAIT = { timeout: 15_000 }

function toolCall (id: number, args: StreamedCallArguments): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'stream', arguments: args } })
}

/** A streamed call whose client leaves as soon as the response head arrives. */
async function callAndLeave (port: number, sessionId: string, id: number, args: StreamedCallArguments, headers: Record<string, string> = {}): Promise<number> {
  const body = toolCall(id, args)
  return await new Promise((resolve, reject) => {
    const outgoing = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/mcp',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': VERSION, 'content-length': Buffer.byteLength(body), ...headers }
    }, (response) => {
      resolve(response.statusCode ?? 0)
      response.destroy()
      outgoing.destroy()
    })
    outgoing.setTimeout(10_000, () => outgoing.destroy(new Error('no response head')))
    outgoing.on('error', (error) => { if (!outgoing.destroyed || error.message === 'no response head') reject(error) })
    outgoing.end(body)
  })
}

async function openSessionAs (origin: string, headers: Record<string, string> = {}): Promise<string> {
  const answer = await post(`${origin}/mcp`, initializeRequest(1, VERSION), undefined, headers)
  const sessionId = answer.headers.get('mcp-session-id')
  if (sessionId === null) throw new Error(`no session: ${answer.status} ${answer.text}`)
  return sessionId
}

function sessionHeaders (sessionId: string, headers: Record<string, string> = {}): Record<string, string> {
  return { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': VERSION, ...headers }
}

/** A streamed call read by the test until it chooses to cut it. */
async function callAndRead (origin: string, sessionId: string, id: number, args: StreamedCallArguments, headers: Record<string, string> = {}): Promise<OpenStream> {
  return await openStream(`${origin}/mcp`, { method: 'POST', headers: sessionHeaders(sessionId, headers), body: toolCall(id, args) })
}

async function resume (origin: string, sessionId: string, lastEventId: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return await openStream(`${origin}/mcp`, { method: 'GET', headers: { ...sessionHeaders(sessionId, headers), accept: 'text/event-stream', 'last-event-id': lastEventId } })
}

function errorsOf (stream: OpenStream): Array<{ id: unknown, error: { code: number, message: string } }> {
  return stream.events.filter((event) => event.data !== '').map((event) => JSON.parse(event.data) as { id: unknown, error?: { code: number, message: string } })
    .filter((message): message is { id: unknown, error: { code: number, message: string } } => message.error !== undefined)
}

async function limitCount (gateway: TestGateway, limit: string): Promise<number> {
  return sample((await request(`${gateway.origin}/metrics`, { method: 'GET' })).text, 'mcpgw_stream_limits_total', { limit })
}

async function residentBytes (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024
}

t.test('2000 calls left right after their response head: few keep running, memory stays flat', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await startGatewayProcess({
    redis: { url: redis.url, keyPrefix: 'attack:' },
    sessions: { binding: { header: 'x-user' }, maxPerPrincipal: 100 },
    routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }]
    // The heap Node gives itself under the Kubernetes manifest's 512 MiB limit (deploy/kubernetes):
    // on a machine with no limit V8 postpones collecting for gigabytes, and RSS would measure that.
  }, await freePort(), { nodeArguments: ['--max-old-space-size=256'] })
  t.teardown(() => gateway.close())
  const headers = { 'x-user': 'mallory' }
  const sessionId = await openSessionAs(gateway.origin, headers)
  const client = redis.client()
  const calls = { events: 100_000, gapMs: 100 }
  let next = 1
  const attack = async (count: number, concurrency: number): Promise<void> => {
    const last = next + count
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < last) await callAndLeave(gateway.port, sessionId, next++, calls, headers)
    }))
  }
  // The same attack first, to warm the process: V8 grows its heap to a working size under this
  // load whatever the streams keep (docs/security.md, "Limits"), and that is not what is measured.
  await attack(2000, 16)
  await eventually(() => upstream.open() <= 8, { ...WAIT, description: 'the warm-up to settle at the session\'s limit' })
  const rssBefore = await residentBytes(gateway.pid as number)
  const redisBefore = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1])
  const maxOpenBefore = upstream.maxOpen

  await attack(2000, 16)
  await eventually(() => upstream.open() <= 8, { ...WAIT, description: 'the session\'s abandoned calls to settle at streams.maxAbandonedPerSession' })
  const rssAfter = await residentBytes(gateway.pid as number)
  const redisAfter = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1])
  t.comment(`upstream requests open at most ${Math.max(maxOpenBefore, upstream.maxOpen)}, now ${upstream.open()}; gateway RSS ${(rssBefore / 2 ** 20).toFixed(1)} -> ${(rssAfter / 2 ** 20).toFixed(1)} MiB; Redis used_memory ${(redisBefore / 2 ** 20).toFixed(1)} -> ${(redisAfter / 2 ** 20).toFixed(1)} MiB`)
  t.ok(upstream.maxOpen <= 32, `at most 32 upstream requests open for the session at any time (${upstream.maxOpen})`)
  t.ok(rssAfter - rssBefore < 64 * 2 ** 20, `the gateway's RSS grew by less than 64 MiB (${((rssAfter - rssBefore) / 2 ** 20).toFixed(1)} MiB)`)
  t.ok(redisAfter - redisBefore < 16 * 2 ** 20, `Redis grew by less than 16 MiB (${((redisAfter - redisBefore) / 2 ** 20).toFixed(1)} MiB): the session's byte limit holds`)
  await eventually(() => upstream.cancelled.length >= upstream.calls - 8, { ...WAIT, description: 'every ended call to be cancelled upstream' })
  t.pass(`the upstream was told of ${upstream.cancelled.length} cancellations for ${upstream.calls} calls`)
  t.equal((await fetch(`${gateway.origin}/healthz`)).status, 200)
})

t.test('past maxAbandonedPerSession the oldest call ends: cancelled upstream, its pending request answered for a resume', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'oldest:' }, streams: { maxAbandonedPerSession: 2 }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const sessionId = await openSessionAs(gateway.origin)
  const left: OpenStream[] = []
  for (const id of [1, 2, 3]) {
    const stream = await callAndRead(gateway.origin, sessionId, id, { gapMs: 100 })
    await stream.waitFor(2)
    stream.cut()
    left.push(stream)
    await eventually(() => upstream.open() <= 2, { ...WAIT, description: 'at most two calls running with nobody reading' })
  }
  await eventually(() => upstream.cancelled.includes(1), { ...WAIT, description: 'the upstream to hear that call 1 is cancelled' })
  t.same(upstream.cancelled, [1], 'only the oldest call ended')
  t.equal(upstream.open(), 2, 'the two newer calls run on')
  t.equal(await limitCount(gateway, 'abandoned_per_session'), 1, 'counted')

  const resumed = await resume(gateway.origin, sessionId, lastId(left[0] as OpenStream))
  await resumed.ended
  const errors = errorsOf(resumed)
  t.equal(errors.length, 1, 'the resume gets what was kept, then the answer to its request')
  t.match(errors[0], { id: 1, error: { code: -32603, message: /too many calls of this session/ } })
  const running = await resume(gateway.origin, sessionId, lastId(left[2] as OpenStream))
  await running.waitFor(2)
  t.same(errorsOf(running), [], 'a call still running resumes as usual')
  running.cut()
})

t.test('past maxAbandonedPerPrincipal or maxAbandoned a call whose client leaves ends at once', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'principal:' },
      sessions: { binding: { header: 'x-user' } },
      streams: { maxAbandonedPerPrincipal: 2, maxAbandoned: 3 },
      routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }]
    }
  })
  const port = Number(new URL(gateway.origin).port)
  const alice = { 'x-user': 'alice' }
  const first = await openSessionAs(gateway.origin, alice)
  const second = await openSessionAs(gateway.origin, alice)
  for (const id of [1, 2]) await callAndLeave(port, first, id, {}, alice)
  await eventually(() => upstream.calls === 2 && upstream.open() === 2, { ...WAIT, description: 'alice\'s two calls running' })
  const refused = await callAndRead(gateway.origin, second, 3, { gapMs: 100 }, alice)
  await refused.waitFor(1)
  refused.cut()
  await eventually(() => upstream.cancelled.includes(3), { ...WAIT, description: 'the third call of the principal to be cancelled at once' })
  t.equal(upstream.open(), 2, 'alice keeps two calls running, on any of her sessions')
  const answer = await resume(gateway.origin, second, lastId(refused), alice)
  await answer.ended
  t.match(errorsOf(answer), [{ id: 3, error: { message: /too many calls/ } }], 'its pending request is answered')
  t.equal(await limitCount(gateway, 'abandoned_per_principal'), 1)

  const bob = { 'x-user': 'bob' }
  const bobs = await openSessionAs(gateway.origin, bob)
  await callAndLeave(port, bobs, 4, {}, bob)
  await eventually(() => upstream.open() === 3, { ...WAIT, description: 'bob\'s call running: three on the replica' })
  const carol = { 'x-user': 'carol' }
  await callAndLeave(port, await openSessionAs(gateway.origin, carol), 5, {}, carol)
  await eventually(() => upstream.cancelled.includes(5), { ...WAIT, description: 'a fourth call on the replica to be cancelled at once' })
  t.equal(upstream.open(), 3)
  t.equal(await limitCount(gateway, 'abandoned'), 1)
})

t.test('bytes: five calls of 20 x 1 MiB reach their reader whole, and Redis keeps at most the session\'s limit', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'bytes:' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const sessionId = await openSessionAs(gateway.origin)
  const streams: OpenStream[] = []
  for (let id = 1; id <= 5; id++) {
    const stream = await callAndRead(gateway.origin, sessionId, id, { events: 20, gapMs: 5, bytes: 1024 * 1024 })
    await stream.ended
    streams.push(stream)
    t.equal(stream.events.filter((event) => event.data !== '').length, 21, `call ${id}: every event and the result, live`)
  }
  const client = redis.client()
  let kept = 0
  for (const key of await client.keys('bytes:*')) kept += Number(await client.memory('USAGE', key))
  t.comment(`Redis MEMORY USAGE of everything kept: ${(kept / 2 ** 20).toFixed(2)} MiB`)
  t.ok(kept <= 4.5 * 2 ** 20, `the session keeps at most about streams.maxBytesPerSession (4 MiB): ${(kept / 2 ** 20).toFixed(2)} MiB`)
  t.ok(await limitCount(gateway, 'bytes_per_stream') >= 1 && await limitCount(gateway, 'bytes_per_session') >= 1, 'both limits counted')

  // The first call kept its priming event and its first 1 MiB event (2 MiB per stream), then an end marker.
  const events = (streams[0] as OpenStream).events
  const fromStart = await resume(gateway.origin, sessionId, events[0]?.id as string)
  await fromStart.ended
  t.equal(fromStart.events.filter((event) => event.data !== '').length, 1, 'a resume from before the limit gets what was kept, then ends')
  const pastLimit = await request(`${gateway.origin}/mcp`, { method: 'GET', headers: { ...sessionHeaders(sessionId), accept: 'text/event-stream', 'last-event-id': events[5]?.id as string } })
  t.equal(pastLimit.status, 405, 'a resume from past the limit: the id is not held (405 on a route without GET streams)')
})

t.test('a Last-Event-ID past what was kept is not held: answered at once, the real reader goes on', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'past:' }, streams: { retention: '10m' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const sessionId = await openSessionAs(gateway.origin)
  const reader = await callAndRead(gateway.origin, sessionId, 1, { events: 40, gapMs: 100 })
  await reader.waitFor(2)
  const stream = lastId(reader).split('.')[0] as string
  const started = Date.now()
  const bogus = await request(`${gateway.origin}/mcp`, { method: 'GET', headers: { ...sessionHeaders(sessionId), accept: 'text/event-stream', 'last-event-id': `${stream}.900` } })
  t.equal(bogus.status, 405, 'served as a GET without it')
  t.ok(Date.now() - started < 5_000, 'at once, not after a retention')
  const seen = reader.events.length
  await eventually(() => reader.events.length >= seen + 3, { ...WAIT, description: 'the real reader to keep getting events' })
  t.notOk(reader.isEnded(), 'nothing took it over')
  await reader.ended
  const last = lastId(reader)
  const afterLast = await request(`${gateway.origin}/mcp`, { method: 'GET', headers: { ...sessionHeaders(sessionId), accept: 'text/event-stream', 'last-event-id': last } })
  t.equal(afterLast.status, 200, 'the last id of a stream that ended: its end, at once')
  t.same(afterLast.messages, [], 'with nothing more')
  const [name, position] = last.split('.') as [string, string]
  const atEnd = await request(`${gateway.origin}/mcp`, { method: 'GET', headers: { ...sessionHeaders(sessionId), accept: 'text/event-stream', 'last-event-id': `${name}.${Number(position) + 1}` } })
  t.equal(atEnd.status, 405, 'the position of its end marker, which no client was given: not held')
})

t.test('a replica that shuts down ends its streams: a resume elsewhere gets what was kept, the answer and the end at once', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const config = { redis: { url: redis.url, keyPrefix: 'shutdown:' }, streams: { retention: '10m' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] }
  const a = await withGateway(t, { config })
  const b = await withGateway(t, { config })
  const sessionId = await openSessionAs(a.origin)
  const stream = await callAndRead(a.origin, sessionId, 7, { gapMs: 100 })
  await stream.waitFor(3)
  stream.cut()
  await a.close()
  t.ok(upstream.cancelled.includes(7), 'the upstream heard the call is cancelled before the replica was gone')
  t.equal(upstream.open(), 0, 'and its request was closed')
  const started = Date.now()
  const resumed = await resume(b.origin, sessionId, lastId(stream))
  await resumed.ended
  t.ok(Date.now() - started < 5_000, `ended at once (${Date.now() - started} ms), not after streams.retention`)
  t.match(errorsOf(resumed), [{ id: 7, error: { code: -32603, message: /shut down before the upstream answered/ } }], 'the pending request is answered')
})

t.test('a reader that resumes a call and leaves again puts it back under the limits at once', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'dodge:' }, streams: { maxAbandonedPerSession: 2 }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const sessionId = await openSessionAs(gateway.origin)
  for (let id = 1; id <= 6; id++) {
    const call = await callAndRead(gateway.origin, sessionId, id, { gapMs: 100 })
    await call.waitFor(1)
    call.cut()
    const resumed = await resume(gateway.origin, sessionId, lastId(call))
    await resumed.waitFor(1)
    resumed.cut()
  }
  // Not after the resumed reader's reminders stop (two thirds of streams.retention): at once.
  await eventually(() => upstream.open() <= 2, { ...WAIT, description: 'the session\'s calls nobody reads back to its limit' })
  t.ok(upstream.cancelled.length >= 4, `the others were ended and cancelled upstream (${upstream.cancelled.length})`)
})

t.test('a batch ended by a limit: each of its requests answered, and cancelled upstream', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'batch:' }, streams: { maxAbandonedPerSession: 1 }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  // Batches exist in 2025-03-26 only.
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1, '2025-03-26'))
  const sessionId = answer.headers.get('mcp-session-id') as string
  const headers = { ...sessionHeaders(sessionId), 'mcp-protocol-version': '2025-03-26' }
  const batch = (first: number): string => JSON.stringify([first, first + 1].map((id) => JSON.parse(toolCall(id, { gapMs: 100 })) as unknown))
  const evicted = await openStream(`${gateway.origin}/mcp`, { method: 'POST', headers, body: batch(1) })
  await evicted.waitFor(1)
  evicted.cut()
  const newer = await openStream(`${gateway.origin}/mcp`, { method: 'POST', headers, body: batch(3) })
  await newer.waitFor(1)
  newer.cut()
  await eventually(() => upstream.cancelled.includes(1) && upstream.cancelled.includes(2), { ...WAIT, description: 'both requests of the older batch cancelled upstream' })
  const resumed = await resume(gateway.origin, sessionId, lastId(evicted), { 'mcp-protocol-version': '2025-03-26' })
  await resumed.ended
  t.same(errorsOf(resumed).map((error) => error.id).sort(), [1, 2], 'each request of the batch is answered')
})

t.test('a call that streams longer than the idle timeout keeps its session: it is activity', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'long-call:' }, sessions: { idleTimeout: '2s' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const sessionId = await openSessionAs(gateway.origin)
  // Twice the idle timeout, with nothing else on the session meanwhile.
  const call = await callAndRead(gateway.origin, sessionId, 1, { events: 8, gapMs: 500 })
  await call.ended
  t.match(JSON.parse(call.events.at(-1)?.data ?? '{}'), { id: 1, result: {} }, 'the call got its result')
  t.equal((await post(`${gateway.origin}/mcp`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, sessionId, { 'mcp-protocol-version': VERSION })).status, 200, 'and the session lives on')
})
