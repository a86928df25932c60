import type { ServerResponse } from 'node:http'
import t from 'tap'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, LATEST_LEGACY_VERSION } from './helpers/mcp-http.js'
import { startModernUpstream } from './helpers/modern-upstream.js'
import { lastId, openStream, progressOf, type OpenStream } from './helpers/sse-stream.js'
import { startTestCluster } from './helpers/redis-topologies.js'
import type { TestRedis } from './helpers/redis-server.js'
import { json, legacyAnswers, withScriptedUpstream, type ScriptedExchange, type ScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * Resumable streams at their edges (docs/streams.md; MCP 2025-11-25, Transports › Resumability and
 * Redelivery): kept events expire with `streams.retention`; one standalone GET stream per session
 * (a newer one takes over, never a 409) and its resumption; SSE polling with
 * `streams.maxConnectionTime`; resumption of a bridged call; `resumable: false`; JSON answers; a
 * Redis Cluster; and what a client may rely on around them: a response head that leaves at once, a
 * cancellation heard from the first call a replica serves, a call kept alive while a client reads it
 * elsewhere. Two gateway replicas share one real Redis; the upstream streams when the test says.
 */

const API_KEY = 'key-of-alice'
const baseHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'x-api-key': API_KEY }
/** Every wait of this file is bounded by this (eventually's deadline), far above what a passing run needs. */
const WAIT = { timeout: 10_000 }

/** A tool call the upstream streams step by step: `send(n)` writes progress n; `finish()` the result. */
interface ScriptedCall {
  readonly exchange: Promise<ScriptedExchange>
  send (progress: number): Promise<void>
  finish (): Promise<void>
  /** Whether the upstream saw its response closed before it finished it. */
  closedEarly (): boolean
}

/** An upstream GET stream, held open until the test ends it. */
interface UpstreamGet {
  readonly exchange: ScriptedExchange
  send (message: unknown): void
  closed (): boolean
}

interface StreamingUpstream {
  readonly upstream: ScriptedUpstream
  /** The next tools/call the upstream receives, streamed as SSE (or answered as JSON with `json`). */
  nextCall (): ScriptedCall
  /** Every GET the upstream received, each held open as an SSE stream. */
  readonly gets: UpstreamGet[]
  /** tools/call answered as plain JSON instead. */
  jsonCalls: boolean
}

/** A legacy stateless upstream whose tool calls and GET streams the test drives. Its events carry no ids. */
async function withStreamingUpstream (t: Teardown): Promise<StreamingUpstream> {
  const waiting: Array<(exchange: ScriptedExchange) => void> = []
  const gets: UpstreamGet[] = []
  const settings = { jsonCalls: false }
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.method === 'GET') {
      exchange.response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      exchange.response.write(': stream open\n\n')
      let closed = false
      exchange.response.once('close', () => { closed = true })
      gets.push({
        exchange,
        send: (message) => { exchange.response.write(`data: ${JSON.stringify(message)}\n\n`) },
        closed: () => closed
      })
      return
    }
    if (exchange.message?.method === 'tools/call') {
      if (settings.jsonCalls) {
        json(exchange.response, { jsonrpc: '2.0', id: exchange.message.id, result: { content: [{ type: 'text', text: 'as json' }] } })
        return
      }
      exchange.response.writeHead(200, { 'content-type': 'text/event-stream' })
      // Not relayed (the gateway writes its own stream), but it makes the upstream's head leave now.
      exchange.response.write(': upstream comment\n\n')
      waiting.shift()?.(exchange)
      return
    }
    legacyAnswers(exchange)
  })
  const nextCall = (): ScriptedCall => {
    let finished = false
    let closedEarly = false
    const exchange = new Promise<ScriptedExchange>((resolve) => { waiting.push(resolve) })
    void exchange.then(({ response }) => response.once('close', () => { if (!finished) closedEarly = true }))
    const write = (response: ServerResponse, message: unknown): void => { response.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`) }
    return {
      exchange,
      send: async (progress) => {
        const { response, message } = await exchange
        write(response, { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: (message?.params?._meta as { progressToken?: unknown } | undefined)?.progressToken ?? 't', progress, total: 6 } })
      },
      finish: async () => {
        const { response, message } = await exchange
        finished = true
        write(response, { jsonrpc: '2.0', id: message?.id, result: { content: [{ type: 'text', text: 'done' }] } })
        response.end()
      },
      closedEarly: () => closedEarly
    }
  }
  return {
    upstream,
    nextCall,
    gets,
    get jsonCalls () { return settings.jsonCalls },
    set jsonCalls (value) { settings.jsonCalls = value }
  }
}

function gatewayConfig (redis: Record<string, unknown>, upstreamUrl: string, streams: Record<string, unknown> = {}, route: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    redis,
    sessions: { binding: { header: 'x-api-key' } },
    streams,
    routes: [{ path: '/mcp', upstream: upstreamUrl, upstreamEra: 'legacy', ...route }]
  }
}

async function replicas (t: Teardown, config: Record<string, unknown>): Promise<[TestGateway, TestGateway]> {
  return [await withGateway(t, { config }), await withGateway(t, { config })]
}

async function initializeOn (gateway: TestGateway): Promise<string> {
  const response = await fetch(`${gateway.origin}/mcp`, { method: 'POST', headers: baseHeaders, body: JSON.stringify(initializeRequest(1, LATEST_LEGACY_VERSION)) })
  await response.text()
  const sessionId = response.headers.get('mcp-session-id')
  if (response.status !== 200 || sessionId === null) throw new Error(`initialize failed: ${response.status}`)
  return sessionId
}

async function ended (stream: OpenStream, what: string): Promise<void> {
  await eventually(() => stream.isEnded(), { ...WAIT, description: what })
}

function callTool (gateway: TestGateway, sessionId: string, id = 7): Promise<OpenStream> {
  return openStream(`${gateway.origin}/mcp`, {
    method: 'POST',
    headers: { ...baseHeaders, 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'count', arguments: { n: 6 }, _meta: { progressToken: 'p' } } })
  })
}

/** `GET` on the session: a standalone stream, or with `lastEventId` a resume. */
function getOn (gateway: TestGateway, sessionId: string, lastEventId?: string): Promise<OpenStream> {
  return openStream(`${gateway.origin}/mcp`, {
    headers: { ...baseHeaders, accept: 'text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION, ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }) }
  })
}


function step (n: number): unknown {
  return { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `step ${n}`, step: n } }
}

/** Resolves once `count` replicas listen to each other on the shared store (the relay's `all` channel). */
async function listening (t: Teardown, keyPrefix: string, count: number): Promise<void> {
  const client = redis.client()
  t.teardown(() => client.disconnect())
  await eventually(async () => (await client.pubsub('NUMSUB', `${keyPrefix}bridge:all`))[1] as number >= count, { ...WAIT, description: `${count} replicas listening` })
}

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

t.test('retention expiry: once an ended stream\'s retention passed, its id is served like a GET without it, and its keys are gone', async (t) => {
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'expiry:' }, upstream.url, { retention: '500ms' }))
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const stream = await callTool(a, sessionId)
  await call.send(1)
  await call.finish()
  await stream.ended
  t.same(progressOf(stream.events), [1, 'result'])
  const client = redis.client()
  t.teardown(() => client.disconnect())
  t.ok((await client.keys('expiry:stream*')).length >= 2, 'the stream and its index are kept')
  const kept = await getOn(b, sessionId, lastId(stream))
  await kept.ended
  t.equal(kept.status, 200, 'within retention the id resumes (nothing after it: the stream had ended)')

  await eventually(async () => (await client.keys('expiry:stream*')).length === 0, { ...WAIT, description: 'the stream keys to expire after 500 ms' })
  const expired = await getOn(b, sessionId, lastId(stream))
  await expired.ended
  t.equal(expired.status, 405, 'served like a GET without Last-Event-ID: this route has no standalone stream')
  t.same(expired.events, [])
  t.same(await client.keys('expiry:stream*'), [], 'and nothing was written again')
})

t.test('GET takeover: a second GET on the other replica ends the first (200 both, never 409), and the first upstream GET closes', async (t) => {
  const { upstream, gets } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'takeover:' }, upstream.url, {}, { getStream: 'forward' }))
  const sessionId = await initializeOn(a)
  const first = await getOn(a, sessionId)
  t.teardown(() => { first.cut() })
  t.equal(first.status, 200)
  await eventually(() => gets.length === 1, { ...WAIT, description: 'the upstream GET from replica A' })
  // Replica A hears claims made elsewhere once it listens to the other replicas (a race of its own: see the early cancellation test).
  await listening(t, 'takeover:', 1)
  gets[0]?.send(step(1))
  await first.waitFor(1)

  const second = await getOn(b, sessionId)
  t.teardown(() => { second.cut() })
  t.equal(second.status, 200, 'the newer GET is served, not refused with 409')
  await ended(first, 'replica A\'s response to end')
  await eventually(() => gets[0]?.closed(), { ...WAIT, description: 'the first upstream GET to be closed' })
  await eventually(() => gets.length === 2, { ...WAIT, description: 'the upstream GET from replica B' })
  gets[1]?.send(step(2))
  await second.waitFor(1)
  t.same(progressOf(first.events), [1], 'replica A\'s stream had only what came before the takeover')
  t.same(progressOf(second.events), [2], 'replica B\'s stream goes on')
  t.notOk(second.isEnded(), 'and stays open')
  t.notOk(gets[1]?.closed(), 'as does its upstream GET')
})

t.test('standalone GET resume: what was sent while the client was away is replayed on the other replica, then the stream goes on live', async (t) => {
  const { upstream, gets } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'get-resume:' }, upstream.url, {}, { getStream: 'forward' }))
  const sessionId = await initializeOn(a)
  const first = await getOn(a, sessionId)
  t.equal(first.status, 200)
  await eventually(() => gets.length === 1, { ...WAIT, description: 'the upstream GET from replica A' })
  gets[0]?.send(step(1))
  gets[0]?.send(step(2))
  await first.waitFor(2)
  t.ok(first.events.every((event) => event.id?.startsWith('g') === true), 'standalone stream ids start with g')
  first.cut()
  // Sent while nobody reads: replica A keeps them.
  gets[0]?.send(step(3))
  gets[0]?.send(step(4))

  const resumed = await getOn(b, sessionId, lastId(first))
  t.teardown(() => { resumed.cut() })
  t.equal(resumed.status, 200)
  await resumed.waitFor(2)
  // The old stream's holder does not end it: after a quiet second the resume goes on with a new upstream GET.
  await eventually(() => gets.length === 2, { ...WAIT, description: 'a new upstream GET from replica B' })
  t.equal(gets[1]?.exchange.headers['last-event-id'], undefined, 'the gateway\'s id is not sent to the upstream')
  await eventually(() => gets[0]?.closed(), { ...WAIT, description: 'the first upstream GET to be closed (taken over)' })
  gets[1]?.send(step(5))
  await resumed.waitFor(3)
  t.same(progressOf(first.events), [1, 2])
  t.same(progressOf(resumed.events), [3, 4, 5], 'replayed once each, then live')
  t.notOk(resumed.isEnded(), 'the resumed response is the session\'s standalone stream now')
  const ids = [...first.events, ...resumed.events].map((event) => event.id)
  t.equal(new Set(ids).size, ids.length, 'ids are unique')
})

t.test('maxConnectionTime: the response ends after an event with an id and a retry field; resuming yields the rest and the result once', async (t) => {
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'polling:' }, upstream.url, { maxConnectionTime: '300ms' }))
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const first = await callTool(a, sessionId)
  await call.send(1)
  await first.waitFor(1)
  await ended(first, 'the response to end after maxConnectionTime')
  const text = first.raw.join('')
  t.match(text, /\nretry: [0-9]+\n\n$/, 'the response ends with a retry field')
  t.ok(first.events.at(-1)?.id !== undefined, 'after an event with an id')
  t.same(progressOf(first.events), [1])
  t.notOk(call.closedEarly(), 'the call goes on')

  await call.send(2)
  await call.send(3)
  // Each resumed response is polled too: come back with the last id seen until the result arrives.
  const seen: unknown[] = []
  let lastEventId = lastId(first)
  let resumes = 0
  let finished = false
  while (!seen.includes('result') && resumes < 20) {
    const replica = resumes % 2 === 0 ? b : a
    resumes++
    const resumed = await getOn(replica, sessionId, lastEventId)
    t.equal(resumed.status, 200, `resume ${resumes} served`)
    if (!finished) {
      await resumed.waitFor(1)
      await call.send(4)
      await call.finish()
      finished = true
    }
    await resumed.ended
    seen.push(...progressOf(resumed.events))
    if (resumed.events.length > 0) lastEventId = lastId(resumed)
  }
  t.same(seen, [2, 3, 4, 'result'], 'the rest and the result, each once')
  t.notOk(call.closedEarly())
})

t.test('bridged resume: a call to a 2026-07-28 upstream, cut after its first notification, resumes on the other replica', async (t) => {
  const modern = await startModernUpstream('reject')
  t.teardown(() => modern.close())
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'bridged:' }, modern.url, {}, { upstreamEra: 'modern' }))
  const sessionId = await initializeOn(a)
  const first = await openStream(`${a.origin}/mcp`, {
    method: 'POST',
    headers: { ...baseHeaders, 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'count', arguments: { n: 10 }, _meta: { progressToken: 'p' } } })
  })
  t.equal(first.status, 200)
  await first.waitFor(1)
  first.cut()
  const resumed = await getOn(b, sessionId, lastId(first))
  t.equal(resumed.status, 200)
  await resumed.ended
  const before = progressOf(first.events)
  t.same(before.slice(0, 1), [1], 'the first notification came before the cut')
  t.same([...before, ...progressOf(resumed.events)], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 'result'], 'the rest once each, then the result')
  const result = JSON.parse(resumed.events.at(-1)?.data ?? '{}') as { id?: unknown, result?: { content?: unknown } }
  t.same(result, { jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text: 'counted to 10' }] } }, 'the result answers the client\'s request id')
})

t.test('resumable: false: no ids, keep-alive still on, and a client that leaves closes the upstream request', async (t) => {
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'not-resumable:' }, upstream.url, { resumable: false, keepAlive: '100ms' }))
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const stream = await callTool(a, sessionId)
  t.equal(stream.status, 200)
  await call.send(1)
  await stream.waitFor(1)
  await eventually(() => stream.comments.filter((line) => line === ': keepalive').length >= 1, { ...WAIT, description: 'a keep-alive comment' })
  await call.send(2)
  await stream.waitFor(2)
  t.same(progressOf(stream.events), [1, 2], 'no priming event either')
  t.notOk(stream.raw.join('').split('\n').some((line) => line.startsWith('id:')), 'no id: lines')
  stream.cut()
  await eventually(() => call.closedEarly(), { ...WAIT, description: 'the upstream request to be closed' })
  const client = redis.client()
  t.teardown(() => client.disconnect())
  t.same(await client.keys('not-resumable:stream*'), [], 'nothing kept')
  const resume = await getOn(a, sessionId, 'r0123456789abcdef.1')
  await resume.ended
  t.equal(resume.status, 405, 'a Last-Event-ID means nothing here')
})

t.test('a JSON answer on a resumable route passes untouched, and nothing is kept', async (t) => {
  const streaming = await withStreamingUpstream(t)
  streaming.jsonCalls = true
  const [a] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'json:' }, streaming.upstream.url))
  const sessionId = await initializeOn(a)
  const answer = await callTool(a, sessionId, 11)
  await answer.ended
  t.equal(answer.status, 200)
  t.match(answer.headers.get('content-type'), /^application\/json/)
  t.equal(answer.raw.join(''), JSON.stringify({ jsonrpc: '2.0', id: 11, result: { content: [{ type: 'text', text: 'as json' }] } }), 'the upstream\'s bytes')
  const client = redis.client()
  t.teardown(() => client.disconnect())
  t.same(await client.keys('json:stream*'), [], 'no stream or index key')
})

t.test('resuming while the first response is still open: the first gives way, the call goes on', async (t) => {
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'give-way:' }, upstream.url))
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const first = await callTool(a, sessionId)
  await call.send(1)
  await first.waitFor(1)
  await listening(t, 'give-way:', 1)
  // From the priming event's id: event 1 is replayed (and the response head leaves with it, see below).
  const second = await getOn(b, sessionId, first.events[0]?.id as string)
  t.equal(second.status, 200)
  await ended(first, 'replica A\'s response to give way')
  await call.send(2)
  await call.finish()
  await second.ended
  t.same(progressOf(first.events), [1])
  t.same(progressOf(second.events), [1, 2, 'result'])
  t.notOk(call.closedEarly())
})

t.test('the response head leaves at once, even with no event to send yet', async (t) => {
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'head-at-once:' }, upstream.url))
  const headOf = async (what: string, url: string, init: RequestInit): Promise<void> => {
    const abort = new AbortController()
    t.teardown(() => { abort.abort() })
    let status: number | undefined
    void fetch(url, { ...init, signal: abort.signal }).then((response) => { status = response.status }, () => undefined)
    // keepAlive is 15 s here: the head must not wait for the first keep-alive comment, nor for the first event.
    const arrived = await eventually(() => status, { timeout: 3_000, description: `the head of ${what}` }).catch(() => undefined)
    t.equal(arrived, 200, `${what}: 200 within 3 s`)
  }
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const stream = await callTool(a, sessionId)
  await call.send(1)
  await stream.waitFor(1)
  stream.cut()
  await headOf('a resume with nothing to replay yet', `${b.origin}/mcp`, {
    headers: { ...baseHeaders, accept: 'text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION, 'last-event-id': lastId(stream) }
  })

  const olderResponse = await fetch(`${a.origin}/mcp`, { method: 'POST', headers: baseHeaders, body: JSON.stringify(initializeRequest(1, '2025-06-18')) })
  await olderResponse.text()
  const olderSession = olderResponse.headers.get('mcp-session-id') as string
  nextCall()
  await headOf('a tool call\'s stream of a 2025-06-18 session (no priming event)', `${a.origin}/mcp`, {
    method: 'POST',
    headers: { ...baseHeaders, 'mcp-session-id': olderSession, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'count', arguments: {} } })
  })
})

t.test('two calls in one session: a resume replays its own stream only; a resumed stream resumes again', async (t) => {
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'two-calls:' }, upstream.url))
  const sessionId = await initializeOn(a)
  const one = nextCall()
  const firstOne = await callTool(a, sessionId, 7)
  const two = nextCall()
  const firstTwo = await callTool(a, sessionId, 8)
  await one.send(1)
  await two.send(10)
  await one.send(2)
  await two.send(20)
  await firstOne.waitFor(2)
  await firstTwo.waitFor(2)
  firstOne.cut()
  firstTwo.cut()
  await one.send(3)
  await two.send(30)

  const resumedOne = await getOn(b, sessionId, lastId(firstOne))
  await resumedOne.waitFor(1)
  await one.finish()
  await resumedOne.ended
  t.same(progressOf(resumedOne.events), [3, 'result'], 'only the first call\'s events')

  const resumedTwo = await getOn(b, sessionId, lastId(firstTwo))
  await resumedTwo.waitFor(1)
  resumedTwo.cut()
  await two.send(40)
  const againTwo = await getOn(a, sessionId, lastId(resumedTwo))
  await againTwo.waitFor(1)
  await two.finish()
  await againTwo.ended
  t.same([...progressOf(firstTwo.events), ...progressOf(resumedTwo.events), ...progressOf(againTwo.events)], [10, 20, 30, 40, 'result'], 'the second call\'s events once each, over three responses')
  t.notOk(one.closedEarly() || two.closedEarly())
})

t.test('an unknown Last-Event-ID on a getStream: forward route opens a fresh standalone stream', async (t) => {
  const { upstream, gets } = await withStreamingUpstream(t)
  const [a] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'unknown-forward:' }, upstream.url, {}, { getStream: 'forward' }))
  const sessionId = await initializeOn(a)
  const stream = await getOn(a, sessionId, 'rAAAAAAAAAAAAAAAA.3')
  t.teardown(() => { stream.cut() })
  t.equal(stream.status, 200)
  await eventually(() => gets.length === 1, { ...WAIT, description: 'the upstream GET' })
  t.equal(gets[0]?.exchange.headers['last-event-id'], undefined, 'the unknown id is not passed on')
  gets[0]?.send(step(1))
  await stream.waitFor(1)
  t.same(progressOf(stream.events), [1])
})

t.test('a cancellation sent on the other replica as soon as a call has started ends it, on a replica that just started', async (t) => {
  // Pub/sub keeps no history: a replica must hear the other replicas before a call it serves can be
  // cancelled from elsewhere. Fresh replicas each round, so that the call is the first stream they serve.
  let lost = 0
  for (let round = 0; round < 3; round++) {
    const { upstream, nextCall } = await withStreamingUpstream(t)
    const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: `early-cancel-${round}:` }, upstream.url))
    const sessionId = await initializeOn(a)
    const call = nextCall()
    const stream = await callTool(a, sessionId, 9)
    t.teardown(() => { stream.cut() })
    const cancel = await fetch(`${b.origin}/mcp`, {
      method: 'POST',
      headers: { ...baseHeaders, 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 9, reason: 'user' } })
    })
    t.equal(cancel.status, 202)
    await eventually(() => call.closedEarly(), { timeout: 3_000, description: 'the upstream call to be cancelled' }).catch(() => { lost++ })
  }
  t.equal(lost, 0, 'no cancellation lost')
})

t.test('a quiet call read through a resume on the other replica outlives retention and delivers its result', async (t) => {
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'quiet-resumed:' }, upstream.url, { retention: '1500ms' }))
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const first = await callTool(a, sessionId)
  await call.send(1)
  await first.waitFor(1)
  first.cut()
  const resumed = await getOn(b, sessionId, lastId(first))
  t.equal(resumed.status, 200)
  // The behaviour is time passing: the call says nothing for longer than retention while a client reads it.
  await new Promise((resolve) => setTimeout(resolve, 2_500))
  await call.send(2)
  await call.finish()
  // A client whose response ended comes back with the last id it saw, as the SDK client does.
  const responses = [resumed]
  for (;;) {
    const current = responses.at(-1) as OpenStream
    await current.ended
    const events = responses.flatMap((response) => response.events)
    if (current.status !== 200 || progressOf(events).includes('result') || responses.length >= 5) break
    responses.push(await getOn(responses.length % 2 === 1 ? a : b, sessionId, events.at(-1)?.id ?? lastId(first)))
  }
  t.same(responses.map((response) => response.status).filter((status) => status !== 200), [], 'every resume is served')
  t.same(progressOf(responses.flatMap((response) => response.events)), [2, 'result'], 'the rest and the result')
  t.notOk(call.closedEarly(), 'the call was not abandoned while a client read it')
})

t.test('with a retention under a second, a busy call read through a resume is not abandoned', async (t) => {
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ url: redis.url, keyPrefix: 'short-retention:' }, upstream.url, { retention: '500ms' }))
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const first = await callTool(a, sessionId)
  await call.send(1)
  await first.waitFor(1)
  first.cut()
  const resumed = await getOn(b, sessionId, lastId(first))
  t.equal(resumed.status, 200)
  for (let progress = 2; progress <= 6; progress++) {
    // Paced on purpose: the call runs for longer than retention, never quiet for long, while a client reads.
    await new Promise((resolve) => setTimeout(resolve, 200))
    await call.send(progress)
  }
  await call.finish()
  await resumed.ended
  t.same(progressOf(resumed.events), [2, 3, 4, 5, 6, 'result'])
  t.notOk(call.closedEarly(), 'the call was not abandoned while a client read it')
})

t.test('redis cluster: a stream cut on one replica resumes on the other', async (t) => {
  const cluster = await startTestCluster(3)
  t.teardown(() => cluster.close())
  const { upstream, nextCall } = await withStreamingUpstream(t)
  const [a, b] = await replicas(t, gatewayConfig({ cluster: { nodes: [cluster.urls[0]] }, keyPrefix: 'cluster:' }, upstream.url))
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const first = await callTool(a, sessionId)
  await call.send(1)
  await call.send(2)
  await first.waitFor(2)
  first.cut()
  await call.send(3)
  const resumed = await getOn(b, sessionId, lastId(first))
  t.equal(resumed.status, 200)
  await resumed.waitFor(1)
  await call.send(4)
  await call.finish()
  await resumed.ended
  t.same(progressOf(first.events), [1, 2])
  t.same(progressOf(resumed.events), [3, 4, 'result'])
  t.notOk(call.closedEarly())
})
