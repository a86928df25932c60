import Fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { validateConfig } from '../src/config/validate-config.js'
import { buildGateway } from '../src/gateway.js'

/*
 * The processes `npm run bench` measures, one role per process so that each has its own event loop,
 * its own CPU time (read from /proc by the benchmark) and, on a large machine, its own cores:
 *   upstream  a minimal stateless MCP endpoint (answers at once; the benchmark measures the proxies)
 *   bare      @fastify/http-proxy in front of it, no session logic: the baseline
 *   gateway   mcp-session-gateway in front of it, sessions in Redis, `streams` as configured by default
 *   gateway-recording, gateway-relaying, gateway-pass-through
 *             the gateway with each `streams` setting that the resumable-streams comparison sets side
 *             by side (docs/performance.md, "Resumable streams")
 *   upstream-stateful
 *             the same endpoint keeping sessions as a stateful SDK server does: initialize assigns an
 *             Mcp-Session-Id, any other request needs a live one (404 otherwise), DELETE ends it
 *   bare-stateful, gateway-stateful
 *             @fastify/http-proxy, and the gateway with a stateful route (`upstreamSessions: true`),
 *             in front of it (docs/performance.md, "Stateful upstreams")
 * Each prints `listening <port>` when ready. Arguments: role, upstream URL, Redis URL.
 */

const [role, upstreamUrl = '', redisUrl = ''] = process.argv.slice(2)

const initializeResult = { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'bench-upstream', version: '1.0.0' } }
const toolsResult = { tools: [{ name: 'echo', description: 'Echo', inputSchema: { type: 'object', properties: {} } }] }
const echoResult = { content: [{ type: 'text', text: 'hello from the bench upstream' }], isError: false }
/** The most progress notifications one streamed call may ask for. */
const MAX_NOTIFICATIONS = 100_000

interface UpstreamMessage {
  id?: unknown
  method?: string
  params?: { name?: string, arguments?: { notifications?: unknown }, _meta?: { progressToken?: unknown } }
}

/*
 * tools/call `index` answers as a long-running tool does: SSE, `arguments.notifications` progress
 * notifications of about 200 bytes each, then the result, each event written on its own, framed as
 * the official SDK frames them (`event: message`). Any other tools/call answers JSON at once.
 */
function progressNotification (progressToken: unknown, progress: number, total: number): string {
  return JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken, progress, total, message: `Indexed batch ${progress} of ${total}: 48 files, 1,204 symbols, 3 warnings under src/proxy/ and src/streams/` } })
}

function indexResult (id: unknown, total: number): string {
  return JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: `Indexed ${total} batches: ${total * 48} files, ${total * 1204} symbols, ${total * 3} warnings, no errors.` }], isError: false } })
}

function streamIndexCall (message: UpstreamMessage, response: ServerResponse): void {
  const requested = Number(message.params?.arguments?.notifications ?? 5)
  const total = Number.isSafeInteger(requested) ? Math.min(Math.max(requested, 0), MAX_NOTIFICATIONS) : 5
  const progressToken = message.params?._meta?.progressToken ?? 'bench'
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  for (let progress = 1; progress <= total; progress++) response.write(`event: message\ndata: ${progressNotification(progressToken, progress, total)}\n\n`)
  response.end(`event: message\ndata: ${indexResult(message.id, total)}\n\n`)
}

/** The stateful upstream's sessions: what an SDK server keeps in memory, reduced to the ids. */
const statefulSessions = new Set<string>()

/** Whether the stateful upstream answered the request itself (a session refusal, a DELETE, a new session's id). */
function keepsSessions (message: UpstreamMessage, request: IncomingMessage, response: ServerResponse): boolean {
  const sessionId = request.headers['mcp-session-id']
  if (request.method === 'DELETE') {
    response.writeHead(typeof sessionId === 'string' && statefulSessions.delete(sessionId) ? 200 : 404).end()
    return true
  }
  if (message.method === 'initialize') {
    const assigned = randomUUID()
    statefulSessions.add(assigned)
    response.setHeader('mcp-session-id', assigned)
    return false
  }
  if (typeof sessionId !== 'string' || !statefulSessions.has(sessionId)) {
    response.writeHead(404, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}')
    return true
  }
  return false
}

async function startUpstream (): Promise<number> {
  const stateful = role === 'upstream-stateful'
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      let message: UpstreamMessage = {}
      try { message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof message } catch {}
      if (stateful && keepsSessions(message, request, response)) return
      if (message.id === undefined) {
        response.writeHead(202).end()
        return
      }
      if (message.method === 'tools/call' && message.params?.name === 'index') {
        streamIndexCall(message, response)
        return
      }
      const result = message.method === 'initialize' ? initializeResult : message.method === 'tools/call' ? echoResult : toolsResult
      const body = JSON.stringify({ jsonrpc: '2.0', id: message.id, result })
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

async function startBareProxy (): Promise<number> {
  const app = Fastify({ logger: false })
  const upstream = new URL(upstreamUrl)
  await app.register(httpProxy, { upstream: upstream.origin, prefix: '/mcp', rewritePrefix: upstream.pathname })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

/**
 * `streams` of each gateway role: `gateway` keeps the defaults (which record); the comparison runs
 * recording (`resumable: true`, keep-alive at its default), relaying without keeping (no ids,
 * nothing stored, but the SSE body is still parsed and written again event by event for the
 * keep-alive), and the untouched pass-through.
 */
const streamsOfRole: Record<string, Record<string, unknown> | undefined> = {
  gateway: undefined,
  'gateway-recording': { resumable: true },
  'gateway-relaying': { resumable: false },
  'gateway-pass-through': { resumable: false, keepAlive: 0 },
  'gateway-stateful': undefined
}

async function startGateway (): Promise<number> {
  const streams = streamsOfRole[role ?? '']
  const config = validateConfig({
    listen: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
    redis: { url: redisUrl, keyPrefix: 'bench:' },
    // The sessions a run creates (BENCH_SESSIONS) must all still be live when the last one is measured.
    sessions: { idleTimeout: '24h', maxLifetime: '24h' },
    routes: [role === 'gateway-stateful' ? { path: '/mcp', upstream: [upstreamUrl], upstreamSessions: true } : { path: '/mcp', upstream: upstreamUrl }],
    ...(streams === undefined ? {} : { streams })
  })
  const app = await buildGateway(config)
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

const starters: Record<string, () => Promise<number>> = {
  upstream: startUpstream,
  'upstream-stateful': startUpstream,
  bare: startBareProxy,
  'bare-stateful': startBareProxy,
  ...Object.fromEntries(Object.keys(streamsOfRole).map((gatewayRole) => [gatewayRole, startGateway]))
}
const start = starters[role ?? '']
if (start === undefined) {
  process.stderr.write(`unknown role ${String(role)}\n`)
  process.exit(2)
}
process.stdout.write(`listening ${await start()}\n`)
// Exit through process.exit so that --cpu-prof writes its profile.
process.on('SIGINT', () => process.exit(0))
