import t from 'tap'
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect, type Socket } from 'node:net'
import { eventually } from './helpers/eventually.js'
import { startGatewayProcess } from './helpers/gateway-process.js'
import { withUpstream } from './helpers/fixtures.js'
import { openSession } from './helpers/mcp-http.js'
import { freePort } from './helpers/redis-server.js'
import { streamToolCall } from './helpers/stream-tool-call.js'

/*
 * Keep-alive connections do not hold a shutdown open (docs/operating.md, "Shutdown"): once SIGTERM has
 * arrived, answers say `Connection: close` and connections are closed as they go idle, so the process
 * exits right after its last request instead of after `shutdownGrace`.
 */

const SHUTDOWN_GRACE = '30s'

function toolCall (gapMs: number): string {
  return JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'stream-two-messages', arguments: { gapMs } } })
}

interface Answer { status: number, headers: IncomingHttpHeaders, text: string, endedAt: number }

/** One request through a node:http agent (keep-alive): the socket stays open after the answer. */
async function agentRequest (agent: Agent, origin: string, init: { method: string, path: string, headers?: Record<string, string>, body?: string }): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const outgoing = httpRequest(`${origin}${init.path}`, { agent, method: init.method, headers: init.headers, signal: AbortSignal.timeout(20_000) }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, headers: response.headers, text, endedAt: Date.now() }) })
      response.on('error', reject)
    })
    outgoing.on('error', reject)
    outgoing.end(init.body)
  })
}

/** Resolves once the gateway's port refuses new connections: the signal has been handled. */
async function refusesConnections (port: number): Promise<void> {
  await eventually(async () => await new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => { resolve(true) })
  }), { timeout: 10_000, interval: 20, description: `port ${port} to refuse connections` })
}

t.test('SIGTERM with keep-alive clients: exits right after the last stream ends, not after shutdownGrace', async (t) => {
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await startGatewayProcess({ shutdownGrace: SHUTDOWN_GRACE, routes: [{ path: '/mcp', upstream: upstream.url }] }, await freePort())
  t.teardown(() => gateway.close())
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => { agent.destroy() })

  // One answered request leaves this client's connection open and idle.
  let idleSocket: Socket | undefined
  agent.once('free', (socket: Socket) => { idleSocket = socket })
  t.equal((await agentRequest(agent, gateway.origin, { method: 'GET', path: '/healthz' })).status, 200)
  const idle = await eventually(() => idleSocket, { timeout: 5000, description: 'the keep-alive socket to be idle in the agent' })

  const sessionId = await openSession(`${gateway.origin}/mcp`)
  const call = streamToolCall(gateway.origin, sessionId, 1000)
  await call.firstMessage
  let exitedAt = 0
  const exit = gateway.stop().then((code) => { exitedAt = Date.now(); return code })

  await eventually(() => idle.destroyed, { timeout: 5000, description: 'the gateway to close the idle keep-alive connection' })
  const finished = await call.finished
  if (finished instanceof Error) throw finished
  t.equal(finished.status, 200)
  t.match(finished.text, /second message[\s\S]*"result"/, 'the stream in flight finished')
  t.equal(await exit, 0, 'exit 0')
  const afterLastRequest = exitedAt - finished.endedAt
  t.ok(afterLastRequest < 3000, `exited ${afterLastRequest} ms after the stream ended (shutdownGrace ${SHUTDOWN_GRACE})`)
})

t.test('SIGTERM: an answer still being prepared goes out with connection: close', async (t) => {
  // JSON mode: the upstream answers only when the tool is done, so the headers are not sent yet at SIGTERM.
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await startGatewayProcess({ shutdownGrace: SHUTDOWN_GRACE, routes: [{ path: '/mcp', upstream: upstream.url }] }, await freePort())
  t.teardown(() => gateway.close())
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => { agent.destroy() })

  const sessionId = await openSession(`${gateway.origin}/mcp`)
  const answer = agentRequest(agent, gateway.origin, {
    method: 'POST',
    path: '/mcp',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
    body: toolCall(1000)
  })
  await eventually(() => upstream.received.some((received) => received.body.includes('tools/call')), { timeout: 5000, description: 'the tool call to reach the upstream' })
  let exitedAt = 0
  const exit = gateway.stop().then((code) => { exitedAt = Date.now(); return code })
  const answered = await answer
  t.equal(answered.status, 200)
  t.match(answered.text, /"result"/)
  t.equal(answered.headers.connection, 'close', 'connection: close')
  t.equal(await exit, 0, 'exit 0')
  t.ok(exitedAt - answered.endedAt < 3000, `exited ${exitedAt - answered.endedAt} ms after the answer`)
})

t.test('SIGTERM: a request arriving on an open keep-alive connection gets 503 with connection: close', async (t) => {
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await startGatewayProcess({ shutdownGrace: SHUTDOWN_GRACE, routes: [{ path: '/mcp', upstream: upstream.url }] }, await freePort())
  t.teardown(() => gateway.close())
  const sessionId = await openSession(`${gateway.origin}/mcp`)

  // One raw connection: a stream in flight, then (pipelined, after SIGTERM) a second request on it.
  const socket = connect(gateway.port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { received += chunk })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  const body = toolCall(1500)
  socket.write(`POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:${gateway.port}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n` +
    `mcp-session-id: ${sessionId}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  await eventually(() => received.includes('first message'), { timeout: 5000, description: 'the first streamed message' })

  const exit = gateway.stop()
  await refusesConnections(gateway.port)
  socket.write(`GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:${gateway.port}\r\n\r\n`)
  await closed
  const [first, second] = received.split(/(?=HTTP\/1\.1 )/)
  t.match(first, /^HTTP\/1\.1 200[\s\S]*second message[\s\S]*"result"/, 'the stream in flight finished')
  t.match(second, /^HTTP\/1\.1 503 /, 'the request during shutdown: 503')
  t.match(second, /\r\nconnection: close\r\n/i, 'with connection: close')
  t.match(second, /\r\nx-request-id: [^\r]+\r\n/i, 'with its x-request-id, like every answer')
  const refusal = JSON.parse((second ?? '').slice((second ?? '').indexOf('\r\n\r\n') + 4)) as { error?: { code?: number, message?: string } }
  t.equal(refusal.error?.code, -32603, 'a coded JSON-RPC error body')
  t.match(refusal.error?.message, /shutting down/)
  t.equal(await exit, 0, 'exit 0')
})

t.test('SIGTERM: a connection that never sent a request does not hold the shutdown open', async (t) => {
  const gateway = await startGatewayProcess({ shutdownGrace: SHUTDOWN_GRACE, routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp' }] }, await freePort())
  t.teardown(() => gateway.close())
  // What a client's pre-connected spare connection looks like: open, silent.
  const socket = connect(gateway.port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const closedByGateway = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => {})

  const started = Date.now()
  t.equal(await gateway.stop(), 0, 'exit 0')
  t.ok(Date.now() - started < 3000, `exited after ${Date.now() - started} ms (shutdownGrace ${SHUTDOWN_GRACE})`)
  await closedByGateway
})
