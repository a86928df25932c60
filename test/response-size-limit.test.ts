import t from 'tap'
import { withGateway, type Teardown } from './helpers/fixtures.js'
import { LATEST_LEGACY_VERSION, openSession, post } from './helpers/mcp-http.js'
import { metricsText, sample } from './helpers/metrics.js'
import { json, legacyAnswers, modernAnswers, withScriptedUpstream, type ScriptedExchange } from './helpers/scripted-upstream.js'

/*
 * limits.maxResponseBytes bounds what the gateway holds of one upstream answer: a JSON body it reads,
 * or one SSE event it relays (docs/configuration.md). Past it the answer is
 * MCPGW_UPSTREAM_RESPONSE_TOO_LARGE (docs/errors.md): a 502 before anything was streamed, the
 * JSON-RPC error as the stream's last event after; counted as an upstream error, kind="too_large".
 */

const MAX_RESPONSE_BYTES = 65_536
const TOO_LARGE = /larger than limits\.maxResponseBytes/
const big = 'x'.repeat(100 * 1024)
const legacyHeaders = { 'mcp-protocol-version': LATEST_LEGACY_VERSION }
const call = (id: number): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'big', arguments: {} } })

function sseEvent (message: unknown): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`
}

async function bridgedGateway (t: Teardown, answerCall: (exchange: ScriptedExchange) => void): Promise<{ origin: string, url: string, sessionId: string }> {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method === 'tools/call') answerCall(exchange)
    else modernAnswers(exchange)
  })
  const gateway = await withGateway(t, { config: { limits: { maxResponseBytes: MAX_RESPONSE_BYTES }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  return { origin: gateway.origin, url, sessionId: await openSession(url) }
}

const tooLargeCount = async (origin: string): Promise<number> => sample(await metricsText(origin), 'mcpgw_upstream_errors_total', { route: '/mcp', kind: 'too_large' })

t.test('a bridged JSON answer of 100 KiB: 502, counted too_large', async (t) => {
  const gateway = await bridgedGateway(t, ({ message, response }) => {
    json(response, { jsonrpc: '2.0', id: message?.id, result: { resultType: 'complete', content: [{ type: 'text', text: big }] } })
  })
  const answer = await post(gateway.url, call(2), gateway.sessionId, legacyHeaders)
  t.equal(answer.status, 502)
  t.match(JSON.parse(answer.text), { jsonrpc: '2.0', id: 2, error: { code: -32603, message: TOO_LARGE } })
  t.equal(await tooLargeCount(gateway.origin), 1, 'counted kind="too_large"')
})

t.test('an SSE event of 100 KiB after the stream started: the stream ends with the JSON-RPC error', async (t) => {
  const gateway = await bridgedGateway(t, ({ message, response }) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    response.write(sseEvent({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'small' } }))
    response.end(sseEvent({ jsonrpc: '2.0', id: message?.id, result: { resultType: 'complete', content: [{ type: 'text', text: big }] } }))
  })
  const answer = await post(gateway.url, call(3), gateway.sessionId, legacyHeaders)
  t.equal(answer.status, 200)
  t.match(answer.headers.get('content-type'), /^text\/event-stream/)
  t.match(answer.messages, [
    { method: 'notifications/message', params: { data: 'small' } },
    { jsonrpc: '2.0', id: 3, error: { code: -32603, message: TOO_LARGE } }
  ])
  t.equal(answer.messages.length, 2, 'nothing after the error')
  t.equal(await tooLargeCount(gateway.origin), 1, 'counted kind="too_large"')
})

t.test('an SSE event of 100 KiB before anything was streamed: 502', async (t) => {
  const gateway = await bridgedGateway(t, ({ message, response }) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    response.end(sseEvent({ jsonrpc: '2.0', id: message?.id, result: { resultType: 'complete', content: [{ type: 'text', text: big }] } }))
  })
  const answer = await post(gateway.url, call(4), gateway.sessionId, legacyHeaders)
  t.equal(answer.status, 502)
  t.match(JSON.parse(answer.text), { id: 4, error: { code: -32603, message: TOO_LARGE } })
  t.equal(await tooLargeCount(gateway.origin), 1, 'counted kind="too_large"')
})

t.test('an answer within the limit passes', async (t) => {
  const gateway = await bridgedGateway(t, ({ message, response }) => {
    json(response, { jsonrpc: '2.0', id: message?.id, result: { resultType: 'complete', content: [{ type: 'text', text: 'x'.repeat(60 * 1024) }] } })
  })
  const answer = await post(gateway.url, call(5), gateway.sessionId, legacyHeaders)
  t.equal(answer.status, 200)
  t.match(answer.messages, [{ id: 5, result: { content: [{ type: 'text' }] } }])
})

t.test('a forwarded SSE event of 100 KiB on a stream already open: the stream ends with the JSON-RPC error', async (t) => {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      legacyAnswers(exchange)
      return
    }
    exchange.response.writeHead(200, { 'content-type': 'text/event-stream' })
    exchange.response.write(sseEvent({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'small' } }))
    exchange.response.end(sseEvent({ jsonrpc: '2.0', id: exchange.message.id, result: { content: [{ type: 'text', text: big }] } }))
  })
  const gateway = await withGateway(t, { config: { limits: { maxResponseBytes: MAX_RESPONSE_BYTES }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const url = `${gateway.origin}/mcp`
  const answer = await post(url, call(6), await openSession(url), legacyHeaders)
  t.equal(answer.status, 200)
  t.match(answer.messages, [
    { method: 'notifications/message', params: { data: 'small' } },
    { jsonrpc: '2.0', id: 6, error: { code: -32603, message: TOO_LARGE } }
  ])
  t.equal(answer.messages.length, 2, 'nothing after the error')
  t.equal(await tooLargeCount(gateway.origin), 1, 'counted kind="too_large"')
})
