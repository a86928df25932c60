import t from 'tap'
import { connect } from 'node:net'
import { eventually } from './helpers/eventually.js'
import { freePort } from './helpers/redis-server.js'
import { startGatewayProcess } from './helpers/gateway-process.js'
import { withRedis, withUpstream } from './helpers/fixtures.js'
import { openSession } from './helpers/mcp-http.js'
import { streamToolCall } from './helpers/stream-tool-call.js'

/* SIGTERM lets requests in flight (streams included) finish within shutdownGrace, then exits 0 (docs/operating.md). */

/** Whether a new TCP connection to the port is accepted; closed at once, so it holds up no shutdown. */
async function tryConnect (port: number): Promise<'accepted' | 'refused'> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve('accepted') })
    socket.once('error', () => { resolve('refused') })
  })
}

/** Resolves once the gateway's port refuses new connections. */
async function refusesConnections (port: number): Promise<string> {
  return await eventually(async () => {
    const outcome = await tryConnect(port)
    return outcome === 'refused' && outcome
  }, { timeout: 10_000, interval: 20, description: `port ${port} to refuse connections` })
}

t.test('SIGTERM: a stream in flight finishes, new connections are refused, exit 0', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await startGatewayProcess({ redis: { url: redis.url }, shutdownGrace: '10s', routes: [{ path: '/mcp', upstream: upstream.url }] }, await freePort())
  t.teardown(() => gateway.close())
  const sessionId = await openSession(`${gateway.origin}/mcp`)
  const call = streamToolCall(gateway.origin, sessionId, 1500)
  let streamEnded = false
  void call.finished.then(() => { streamEnded = true })
  await call.firstMessage
  const exit = gateway.stop()
  const refused = await refusesConnections(gateway.port)
  t.equal(refused, 'refused', 'no new connections while draining')
  t.notOk(streamEnded, 'refused while the stream was still in flight')
  const finished = await call.finished
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
  const call = streamToolCall(gateway.origin, sessionId, 8000)
  await call.firstMessage
  const started = Date.now()
  t.equal(await gateway.stop(), 0)
  t.ok(Date.now() - started < 5000, `stopped after the grace, not after the stream (${Date.now() - started} ms)`)
  const result = await call.finished
  t.ok(result instanceof Error || !result.text.includes('"result"'), 'the stream was cut short')
})

t.test('a second signal exits at once', async (t) => {
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await startGatewayProcess({ shutdownGrace: '30s', routes: [{ path: '/mcp', upstream: upstream.url }] }, await freePort())
  t.teardown(() => gateway.close())
  const sessionId = await openSession(`${gateway.origin}/mcp`)
  const call = streamToolCall(gateway.origin, sessionId, 8000)
  await call.firstMessage
  const started = Date.now()
  const exit = gateway.stop()
  // The first signal has been handled once the port refuses connections: the next one is the second.
  await refusesConnections(gateway.port)
  gateway.signal('SIGTERM')
  t.equal(await exit, 1, 'exit 1 on the second signal')
  t.ok(Date.now() - started < 3000, 'without waiting for the stream or the grace')
  await call.finished
})

t.test('shutdownGrace bounds the wait on the metrics port too: a half-sent request there is cut, exit 0', async (t) => {
  const metricsPort = await freePort()
  const gateway = await startGatewayProcess({ shutdownGrace: '500ms', metrics: { port: metricsPort, host: '127.0.0.1' }, routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp' }] }, await freePort())
  t.teardown(() => gateway.close())
  // Headers never finished: the metrics server waits for the rest of the request, no idle close applies.
  const socket = connect(metricsPort, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.write('GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n')
  const started = Date.now()
  // Bounded: before the grace applied to the metrics port, the process never exited.
  let bound: NodeJS.Timeout | undefined
  const exit = await Promise.race([gateway.stop(), new Promise<string>((resolve) => { bound = setTimeout(resolve, 10_000, 'still running') })])
  clearTimeout(bound)
  t.equal(exit, 0, 'exit 0')
  t.ok(Date.now() - started < 5000, `stopped after the grace (${Date.now() - started} ms)`)
})
