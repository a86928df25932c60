import t from 'tap'
import { freePort } from './helpers/redis-server.js'
import { startGatewayProcess } from './helpers/gateway-process.js'
import { withRedis, withUpstream } from './helpers/fixtures.js'
import { openSession } from './helpers/mcp-http.js'

/* Issue #5: SIGTERM lets requests in flight (streams included) finish within shutdownGrace, then exits 0. */

async function streamToolCall (origin: string, sessionId: string, gapMs: number): Promise<{ status: number, text: string } | Error> {
  try {
    const response = await fetch(`${origin}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'stream-two-messages', arguments: { gapMs } } }),
      signal: AbortSignal.timeout(20_000)
    })
    return { status: response.status, text: await response.text() }
  } catch (error) {
    return error as Error
  }
}

t.test('SIGTERM: a stream in flight finishes, new connections are refused, exit 0', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await startGatewayProcess({ redis: { url: redis.url }, shutdownGrace: '10s', routes: [{ path: '/mcp', upstream: upstream.url }] }, await freePort())
  t.teardown(() => gateway.close())
  const sessionId = await openSession(`${gateway.origin}/mcp`)
  const inFlight = streamToolCall(gateway.origin, sessionId, 1500)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const exit = gateway.stop()
  await new Promise((resolve) => setTimeout(resolve, 200))
  const refused = await fetch(`${gateway.origin}/healthz`).then((response) => response.status, () => 'refused')
  t.equal(refused, 'refused', 'no new connections while draining')
  const finished = await inFlight
  t.notOk(finished instanceof Error, 'the stream was not cut')
  if (!(finished instanceof Error)) {
    t.equal(finished.status, 200)
    t.match(finished.text, /first message[\s\S]*second message[\s\S]*"result"/, 'every event, then the result')
  }
  t.equal(await exit, 0, 'exit 0')
})

t.test('shutdownGrace bounds the wait: a longer stream is cut, exit 0', async (t) => {
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await startGatewayProcess({ shutdownGrace: '500ms', routes: [{ path: '/mcp', upstream: upstream.url }] }, await freePort())
  t.teardown(() => gateway.close())
  const sessionId = await openSession(`${gateway.origin}/mcp`)
  const inFlight = streamToolCall(gateway.origin, sessionId, 8000)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const started = Date.now()
  t.equal(await gateway.stop(), 0)
  t.ok(Date.now() - started < 5000, `stopped after the grace, not after the stream (${Date.now() - started} ms)`)
  const result = await inFlight
  t.ok(result instanceof Error || !result.text.includes('"result"'), 'the stream was cut short')
})

t.test('a second signal exits at once', async (t) => {
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await startGatewayProcess({ shutdownGrace: '30s', routes: [{ path: '/mcp', upstream: upstream.url }] }, await freePort())
  t.teardown(() => gateway.close())
  const sessionId = await openSession(`${gateway.origin}/mcp`)
  const inFlight = streamToolCall(gateway.origin, sessionId, 8000)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const started = Date.now()
  const exit = gateway.stop()
  await new Promise((resolve) => setTimeout(resolve, 200))
  gateway.signal('SIGTERM')
  t.equal(await exit, 1, 'exit 1 on the second signal')
  t.ok(Date.now() - started < 3000, 'without waiting for the stream or the grace')
  await inFlight
})
