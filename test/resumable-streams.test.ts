import type { ServerResponse } from 'node:http'
import t from 'tap'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, LATEST_LEGACY_VERSION } from './helpers/mcp-http.js'
import { legacyAnswers, withScriptedUpstream, type ScriptedExchange, type ScriptedUpstream } from './helpers/scripted-upstream.js'
import type { TestRedis } from './helpers/redis-server.js'
import { lastId, openStream, progressOf, type OpenStream } from './helpers/sse-stream.js'

/*
 * Resumable streams (docs/streams.md) on two gateway replicas sharing one real Redis, in front of a
 * scripted stateless upstream whose tool call streams its events when the test says so: a client
 * cut mid-call resumes on the other replica and gets every event once, in order, then the result.
 */

const API_KEY = 'key-of-alice'
const baseHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'x-api-key': API_KEY }

/** A tool call the upstream streams step by step: `send(n)` writes progress n; `finish()` the result. */
interface ScriptedCall {
  readonly exchange: Promise<ScriptedExchange>
  send (progress: number): Promise<void>
  finish (): Promise<void>
  /** Whether the upstream saw its response closed before it finished it. */
  closedEarly (): boolean
}

function scriptedCalls (upstream: ScriptedUpstream): () => ScriptedCall {
  const waiting: Array<(exchange: ScriptedExchange) => void> = []
  upstream.answer = (exchange) => {
    if (exchange.message?.method === 'tools/call') {
      exchange.response.writeHead(200, { 'content-type': 'text/event-stream' })
      // A stateless SDK server puts its own ids on events; they never reach the client.
      exchange.response.write(': upstream comment\n\n')
      waiting.shift()?.(exchange)
      return
    }
    legacyAnswers(exchange)
  }
  return () => {
    let finished = false
    let closedEarly = false
    const exchange = new Promise<ScriptedExchange>((resolve) => { waiting.push(resolve) })
    void exchange.then(({ response }) => response.once('close', () => { if (!finished) closedEarly = true }))
    const write = async (response: ServerResponse, message: unknown): Promise<void> => {
      response.write(`event: message\nid: upstream-own-id\ndata: ${JSON.stringify(message)}\n\n`)
    }
    return {
      exchange,
      send: async (progress) => {
        const { response, message } = await exchange
        await write(response, { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: (message?.params?._meta as { progressToken?: unknown } | undefined)?.progressToken ?? 't', progress, total: 6 } })
      },
      finish: async () => {
        const { response, message } = await exchange
        finished = true
        await write(response, { jsonrpc: '2.0', id: message?.id, result: { content: [{ type: 'text', text: 'done' }] } })
        response.end()
      },
      closedEarly: () => closedEarly
    }
  }
}

async function replicas (t: Teardown, redis: TestRedis, upstream: ScriptedUpstream, streams: Record<string, unknown> = {}, route: Record<string, unknown> = {}): Promise<[TestGateway, TestGateway]> {
  const config = {
    redis: { url: redis.url, keyPrefix: 'resume:' },
    sessions: { binding: { header: 'x-api-key' } },
    streams,
    routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy', ...route }]
  }
  return [await withGateway(t, { config }), await withGateway(t, { config })]
}

async function initializeOn (gateway: TestGateway, protocolVersion = LATEST_LEGACY_VERSION, apiKey = API_KEY): Promise<string> {
  const response = await fetch(`${gateway.origin}/mcp`, { method: 'POST', headers: { ...baseHeaders, 'x-api-key': apiKey }, body: JSON.stringify(initializeRequest(1, protocolVersion)) })
  await response.text()
  const sessionId = response.headers.get('mcp-session-id')
  if (response.status !== 200 || sessionId === null) throw new Error(`initialize failed: ${response.status}`)
  return sessionId
}

function callTool (gateway: TestGateway, sessionId: string, id = 7): Promise<OpenStream> {
  return openStream(`${gateway.origin}/mcp`, {
    method: 'POST',
    headers: { ...baseHeaders, 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'slow', arguments: {}, _meta: { progressToken: 'p' } } })
  })
}

function resume (gateway: TestGateway, sessionId: string, lastEventId: string, apiKey = API_KEY): Promise<OpenStream> {
  return openStream(`${gateway.origin}/mcp`, {
    headers: { ...baseHeaders, 'x-api-key': apiKey, accept: 'text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION, 'last-event-id': lastEventId }
  })
}

t.test('a stream cut after 2 of 6 events resumes on the other replica: 3 to 6 once each, in order, then the result', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t)
  const nextCall = scriptedCalls(upstream)
  const [a, b] = await replicas(t, redis, upstream)
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const first = await callTool(a, sessionId)
  t.equal(first.status, 200)
  await call.send(1)
  await call.send(2)
  await first.waitFor(2)
  t.equal(first.events[0]?.data, '', 'a 2025-11-25 session gets a priming event first')
  t.ok(first.events.every((event) => event.id !== undefined && /^[\x21-\x7e]{1,64}$/.test(event.id)), 'every event has an id of visible ASCII, at most 64')
  t.notOk(first.events.some((event) => event.id === 'upstream-own-id'), 'the upstream\'s own ids are replaced')
  first.cut()
  // Sent while nobody reads: the call goes on, the events are kept.
  await call.send(3)
  await call.send(4)
  const resumed = await resume(b, sessionId, lastId(first))
  t.equal(resumed.status, 200)
  await resumed.waitFor(2)
  await call.send(5)
  await call.send(6)
  await call.finish()
  await resumed.ended
  t.same(progressOf(first.events), [1, 2])
  t.same(progressOf(resumed.events), [3, 4, 5, 6, 'result'], 'replayed, then live from the other replica, then the end')
  t.notOk(call.closedEarly(), 'the client leaving did not end the upstream call')
  const ids = [...first.events, ...resumed.events].map((event) => event.id)
  t.equal(new Set(ids).size, ids.length, 'ids are unique')
  t.match(await (await fetch(`${b.origin}/metrics`)).text(), /mcpgw_stream_resumes_total\{outcome="replayed"\} 1/)
  await eventually(async () => /mcpgw_streams_ended_total\{end="complete"\} 1/.test(await (await fetch(`${a.origin}/metrics`)).text()), { timeout: 10_000, description: 'the writer counted its stream complete' })
})

t.test('an id of another session replays nothing; another principal gets 404', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t)
  const nextCall = scriptedCalls(upstream)
  const [a, b] = await replicas(t, redis, upstream)
  const sessionId = await initializeOn(a)
  const other = await initializeOn(a)
  const call = nextCall()
  const stream = await callTool(a, sessionId)
  await call.send(1)
  await call.finish()
  await stream.ended
  const foreign = await resume(b, other, lastId(stream))
  await foreign.ended
  t.equal(foreign.status, 405, 'served as a GET without it: this route has no standalone stream')
  t.same(foreign.events, [])
  const stranger = await resume(b, sessionId, lastId(stream), 'key-of-mallory')
  await stranger.ended
  t.equal(stranger.status, 404, 'the session is not the other principal\'s')
  t.same(stranger.events, [])
})

t.test('priming only for sessions that negotiated 2025-11-25', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t)
  const nextCall = scriptedCalls(upstream)
  const [a] = await replicas(t, redis, upstream)
  const sessionId = await initializeOn(a, '2025-06-18')
  const call = nextCall()
  const stream = await callTool(a, sessionId)
  await call.send(1)
  await call.finish()
  await stream.ended
  t.same(progressOf(stream.events), [1, 'result'])
  t.notOk(stream.events.some((event) => event.data === ''), 'no empty event for an older client')
  t.ok(stream.events.every((event) => event.id !== undefined), 'ids all the same')
})

t.test('keep-alive comments on a quiet stream', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t)
  const nextCall = scriptedCalls(upstream)
  const [a] = await replicas(t, redis, upstream, { keepAlive: '100ms' })
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const stream = await callTool(a, sessionId)
  await eventually(() => stream.comments.filter((line) => line === ': keepalive').length >= 2, { timeout: 10_000, description: 'two keep-alive comments' })
  await call.finish()
  await stream.ended
  t.notOk(stream.comments.includes(': upstream comment'), 'the upstream\'s comments are not relayed')
  t.same(progressOf(stream.events), ['result'])
})

t.test('session end removes the kept events', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t)
  const nextCall = scriptedCalls(upstream)
  const [a, b] = await replicas(t, redis, upstream)
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const stream = await callTool(a, sessionId)
  await call.send(1)
  await call.finish()
  await stream.ended
  const client = redis.client()
  await eventually(async () => (await client.keys('resume:stream*')).length > 0, { timeout: 10_000, description: 'events kept' })
  const deleted = await fetch(`${b.origin}/mcp`, { method: 'DELETE', headers: { ...baseHeaders, 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION } })
  t.equal(deleted.status, 204)
  t.same(await client.keys('resume:stream*'), [], 'no stream or index key is left')
})

t.test('a cancellation ends a call whose client left; without one it runs to its end', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t)
  const nextCall = scriptedCalls(upstream)
  const [a, b] = await replicas(t, redis, upstream)
  const sessionId = await initializeOn(a)
  const call = nextCall()
  const stream = await callTool(a, sessionId, 9)
  await call.send(1)
  await stream.waitFor(1)
  stream.cut()
  const cancel = await fetch(`${b.origin}/mcp`, {
    method: 'POST',
    headers: { ...baseHeaders, 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 9, reason: 'user' } })
  })
  t.equal(cancel.status, 202)
  await eventually(() => call.closedEarly(), { timeout: 10_000, description: 'the upstream call closed' })
  await eventually(async () => /mcpgw_streams_ended_total\{end="cancelled"\} 1/.test(await (await fetch(`${a.origin}/metrics`)).text()), { timeout: 10_000, description: 'counted as cancelled' })
})

t.test('a resume whose events outweigh one replay page gets them all, then the result', async (t) => {
  const redis = await withRedis(t)
  let held: ScriptedExchange | undefined
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      legacyAnswers(exchange)
      return
    }
    exchange.response.writeHead(200, { 'content-type': 'text/event-stream' })
    // Node sends the head with the first bytes: a comment makes it leave now.
    exchange.response.write(': open\n\n')
    held = exchange
  })
  const [a, b] = await replicas(t, redis, upstream)
  const sessionId = await initializeOn(a)
  const first = await callTool(a, sessionId)
  await eventually(() => held !== undefined, { timeout: 10_000, description: 'the call upstream' })
  const { response, message } = held as ScriptedExchange
  const big = 'x'.repeat(100 * 1024)
  const progress = (n: number): string => `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: n, message: big } })}\n\n`
  response.write(progress(1))
  await first.waitFor(1)
  first.cut()
  // 8 events of 100 KiB: several replay pages (each at most 256 KiB).
  for (let n = 2; n <= 9; n++) response.write(progress(n))
  response.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id: message?.id, result: {} })}\n\n`)
  await eventually(async () => (await redis.client().xlen((await redis.client().keys('resume:stream*')).find((key) => key.startsWith('resume:stream:')) ?? 'none')) >= 11, { timeout: 10_000, description: 'every event kept' })
  const resumed = await resume(b, sessionId, lastId(first))
  await resumed.ended
  t.same(progressOf(resumed.events), [2, 3, 4, 5, 6, 7, 8, 9, 'result'])
})
