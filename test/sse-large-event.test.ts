import type { ServerResponse } from 'node:http'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { withGateway, withRedis } from './helpers/fixtures.js'
import { initializeRequest, LATEST_LEGACY_VERSION, openSession, post } from './helpers/mcp-http.js'
import { legacyAnswers, modernAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'
import type { TestRedis } from './helpers/redis-server.js'
import { openStream } from './helpers/sse-stream.js'

/*
 * One 4 MiB SSE event that reaches the gateway as the network delivers it, a TCP segment's payload
 * at a time, arrives whole and unchanged through every path that parses SSE (docs/performance.md,
 * "SSE parsing"): an initialize answer read before a session is minted, a recorded response stream
 * (kept in Redis, replayed on resume) and a bridged answer. That parsing it costs CPU linear in its
 * bytes is held by test/sse-parser.test.ts.
 */

const SEGMENT_BYTES = 1460
const legacyHeaders = { 'mcp-protocol-version': LATEST_LEGACY_VERSION }
const toolCall = (id: number): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'large', arguments: {} } })

/** About 4 MiB of text, with characters of 2, 3 and 4 UTF-8 bytes throughout so that segments split some of them. */
const largeText = Array.from({ length: 1024 }, () => randomBytes(3 * 1024).toString('base64') + 'é€😀').join('')

/** streams.maxBytesPerStream and maxBytesPerSession raised above the event, so that it is kept whole (docs/streams.md, "Limits"). */
const EVENT_KEEP_LIMIT = 16 * 1024 * 1024

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

/** Writes SSE `messages` as one body, a segment at a time, each write leaving before the next. */
async function writeInSegments (response: ServerResponse, messages: unknown[]): Promise<void> {
  const body = Buffer.from(messages.map((message) => `event: message\ndata: ${JSON.stringify(message)}\n\n`).join(''))
  response.writeHead(200, { 'content-type': 'text/event-stream' })
  response.socket?.setNoDelay(true)
  for (let offset = 0; offset < body.length; offset += SEGMENT_BYTES) {
    response.write(body.subarray(offset, offset + SEGMENT_BYTES))
    // Pacing, not waiting for a fact (docs/testing.md): the gateway reads between writes, so the event reaches it in pieces.
    await new Promise((resolve) => setImmediate(resolve))
  }
  response.end()
}

function textOf (message: unknown): string | undefined {
  return (message as { result?: { content?: Array<{ text?: string }> } }).result?.content?.[0]?.text
}

t.test('an initialize answered with a 4 MiB notification first: read whole, then the session is minted', async (t) => {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'initialize') {
      legacyAnswers(exchange)
      return
    }
    const result = { protocolVersion: LATEST_LEGACY_VERSION, capabilities: { tools: {} }, serverInfo: { name: 'large', version: '1' } }
    void writeInSegments(exchange.response, [
      { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: largeText } },
      { jsonrpc: '2.0', id: exchange.message.id, result }
    ])
  })
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'large-initialize:' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1))
  t.equal(answer.status, 200)
  t.ok(answer.headers.get('mcp-session-id'), 'a session was minted')
  t.equal(answer.messages.length, 2)
  t.ok((answer.messages[0] as { params?: { data?: unknown } }).params?.data === largeText, 'the notification arrived whole')
  t.match(answer.messages[1], { id: 1, result: { protocolVersion: LATEST_LEGACY_VERSION } })
})

t.test('a resumable route: the 4 MiB event reaches the client whole, is kept whole, and is replayed whole', async (t) => {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      legacyAnswers(exchange)
      return
    }
    void writeInSegments(exchange.response, [{ jsonrpc: '2.0', id: exchange.message.id, result: { content: [{ type: 'text', text: largeText }] } }])
  })
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'large-stream:' }, streams: { maxBytesPerStream: EVENT_KEEP_LIMIT, maxBytesPerSession: EVENT_KEEP_LIMIT }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  t.equal(gateway.config.streams.resumable, true, 'streams are resumable (the default)')
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  const stream = await openStream(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, ...legacyHeaders },
    body: JSON.stringify(toolCall(7))
  })
  t.equal(stream.status, 200)
  await stream.ended
  const [priming, event, ...rest] = stream.events
  t.equal(priming?.data, '', 'the priming event first')
  t.same(rest, [], 'then exactly one event')
  t.ok(event?.id, 'with an id of the gateway\'s')
  t.ok(textOf(JSON.parse(event?.data ?? '{}')) === largeText, 'the client got the text whole and unchanged')

  const resumed = await openStream(url, {
    headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId, 'last-event-id': priming?.id ?? '', ...legacyHeaders }
  })
  t.equal(resumed.status, 200)
  await resumed.ended
  const replayed = resumed.events.filter((replay) => replay.data !== '')
  t.equal(replayed.length, 1, 'the event after the priming one is replayed from Redis')
  t.equal(replayed[0]?.id, event?.id)
  t.ok(replayed[0]?.data === event?.data, 'kept whole and unchanged')
})

t.test('a bridged route: a 4 MiB result of a 2026-07-28 upstream reaches the legacy client whole', async (t) => {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      modernAnswers(exchange)
      return
    }
    void writeInSegments(exchange.response, [{ jsonrpc: '2.0', id: exchange.message.id, result: { resultType: 'complete', content: [{ type: 'text', text: largeText }] } }])
  })
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'large-bridged:' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  const answer = await post(url, toolCall(8), await openSession(url), legacyHeaders)
  t.equal(answer.status, 200)
  const results = answer.messages.filter((message) => (message as { id?: unknown }).id === 8)
  t.equal(results.length, 1)
  t.ok(textOf(results[0]) === largeText, 'the text arrived whole and unchanged')
})
