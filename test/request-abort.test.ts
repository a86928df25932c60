import t from 'tap'
import { eventually } from './helpers/eventually.js'
import { withGateway, withUpstream } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { openSession, request } from './helpers/mcp-http.js'
import { withOtlpReceiver } from './helpers/otlp-receiver.js'
import { legacyAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * A client that leaves mid-stream still completes its request (docs/operating.md, "Logs"): exactly one
 * "request completed" line with `outcome: "client aborted"`, `aborted: true` and the status that went
 * out, one count in mcpgw_requests_total, and the request's trace span ended.
 */

const STREAM_GAP_MS = 1500

/** Starts a streamed tools/call and aborts it once the first event arrived; resolves with its request id. */
async function abortMidStream (origin: string, sessionId: string, requestId: string): Promise<void> {
  const controller = new AbortController()
  const response = await fetch(`${origin}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'x-request-id': requestId },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'stream-two-messages', arguments: { gapMs: STREAM_GAP_MS } } }),
    signal: AbortSignal.any([controller.signal, AbortSignal.timeout(10_000)])
  })
  const decoder = new TextDecoder()
  let text = ''
  try {
    for await (const chunk of response.body ?? []) {
      text += decoder.decode(chunk as Uint8Array, { stream: true })
      if (text.includes('first message')) controller.abort()
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error
  }
  if (!controller.signal.aborted) throw new Error(`the stream ended before the client aborted: ${text}`)
}

function completionLines (gateway: TestGateway, requestId: string): Array<Record<string, unknown>> {
  return gateway.logs.filter((line) => line.reqId === requestId && line.msg === 'request completed')
}

async function requestsCounted (origin: string): Promise<number> {
  const metrics = await request(`${origin}/metrics`, { method: 'GET' })
  const line = metrics.text.split('\n').find((candidate) => candidate.startsWith('mcpgw_requests_total{') &&
    candidate.includes('route="/mcp"') && candidate.includes('status="200"') && candidate.includes('rpc_method="tools/call"'))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
}

t.test('a client that aborts mid-stream: one "request completed" line with outcome "client aborted", counted', async (t) => {
  let upstreamFinished = false
  const upstream = await withUpstream(t, { responseMode: 'sse', onSecondMessageWrite: () => { upstreamFinished = true } })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const sessionId = await openSession(`${gateway.origin}/mcp`)

  await abortMidStream(gateway.origin, sessionId, 'aborted-stream-1')
  const lines = await eventually(() => completionLines(gateway, 'aborted-stream-1').length > 0 && completionLines(gateway, 'aborted-stream-1'),
    { timeout: 5000, description: 'the request log line of the aborted stream' })
  t.match(lines[0], { outcome: 'client aborted', aborted: true, status: 200, rpcMethod: 'tools/call', route: '/mcp' })
  t.equal(await requestsCounted(gateway.origin), 1, 'counted in mcpgw_requests_total with the status that went out')

  // Nothing completes it a second time: not the upstream finishing its side, not a later request.
  await eventually(() => upstreamFinished, { timeout: 5000, description: 'the upstream to reach the end of its tool' })
  await request(`${gateway.origin}/healthz`, { method: 'GET', headers: { 'x-request-id': 'after-the-abort' } })
  await eventually(() => completionLines(gateway, 'after-the-abort').length === 1, { timeout: 5000, description: 'the next request\'s log line' })
  t.equal(completionLines(gateway, 'aborted-stream-1').length, 1, 'exactly one line for the aborted request')
  t.equal(await requestsCounted(gateway.origin), 1, 'counted once')
})

t.test('a client that aborts mid-stream: its trace span is ended and exported', async (t) => {
  const receiver = await withOtlpReceiver(t)
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await withGateway(t, { config: { tracing: { otlpEndpoint: receiver.url }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const sessionId = await openSession(`${gateway.origin}/mcp`)

  await abortMidStream(gateway.origin, sessionId, 'aborted-stream-2')
  const span = await eventually(() => receiver.spans.find((candidate) => candidate.attributes['mcp.method'] === 'tools/call'),
    { timeout: 10_000, description: 'the aborted request\'s span to be exported' })
  t.match(span.attributes, { 'mcp.session.outcome': 'client aborted', 'http.response.status_code': 200, 'mcp.era': 'legacy' })
})

for (const streams of [{}, { resumable: false, keepAlive: 0 }]) {
  t.test(`a client that leaves before its stream's first byte is logged once, at info, not as a failure (streams ${JSON.stringify(streams)})`, async (t) => {
    // An upstream that takes a moment before its SSE answer's head, then says nothing for a while (a slow tool).
    const upstream = await withScriptedUpstream(t, (exchange) => {
      if (exchange.message?.method !== 'tools/call') {
        legacyAnswers(exchange)
        return
      }
      const head = setTimeout(() => { exchange.response.writeHead(200, { 'content-type': 'text/event-stream' }).flushHeaders() }, 300)
      const end = setTimeout(() => { exchange.response.end('event: message\ndata: {"jsonrpc":"2.0","id":7,"result":{}}\n\n') }, 3000)
      exchange.response.once('close', () => {
        clearTimeout(head)
        clearTimeout(end)
      })
    })
    const gateway = await withGateway(t, { config: { streams, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
    const sessionId = await openSession(`${gateway.origin}/mcp`)
    for (let index = 0; index < 3; index++) {
      const requestId = `left-early-${index}`
      const controller = new AbortController()
      const answer = fetch(`${gateway.origin}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'x-request-id': requestId },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow', arguments: {} } }),
        signal: controller.signal
      })
      // Gone while the upstream has not answered yet.
      await eventually(() => upstream.received.some((exchange) => exchange.headers['x-request-id'] === requestId), { timeout: 5000, description: 'the call to reach the upstream' })
      controller.abort()
      await answer.catch(() => undefined)
      const lines = await eventually(() => completionLines(gateway, requestId).length > 0 && completionLines(gateway, requestId), { timeout: 5000, description: 'the request line' })
      t.match(lines[0], { outcome: /client aborted/, aborted: true }, 'its one line says the client aborted')
    }
    // Past the moment the upstream's heads arrive for the requests whose clients left.
    await new Promise((resolve) => setTimeout(resolve, 600))
    await request(`${gateway.origin}/healthz`, { method: 'GET', headers: { 'x-request-id': 'after-the-leaves' } })
    await eventually(() => completionLines(gateway, 'after-the-leaves').length === 1, { timeout: 5000, description: 'the next request\'s log line' })
    t.same(gateway.logs.filter((line) => line.reqId !== undefined && (line.level as number) >= 40).map((line) => JSON.stringify(line).slice(0, 600)), [], 'no request logged a warning or an error: a client that leaves is not a fault')
    for (let index = 0; index < 3; index++) t.equal(completionLines(gateway, `left-early-${index}`).length, 1, 'one line per request')
  })
}
