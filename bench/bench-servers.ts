import Fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { validateConfig } from '../src/config/validate-config.js'
import { buildGateway } from '../src/gateway.js'

/*
 * The processes `npm run bench` measures, one role per process so that each has its own event loop,
 * its own CPU time (read from /proc by the benchmark) and, on a large machine, its own cores:
 *   upstream  a minimal stateless MCP endpoint (answers at once; the benchmark measures the proxies)
 *   bare      @fastify/http-proxy in front of it, no session logic: the baseline
 *   gateway   mcp-session-gateway in front of it, sessions in Redis
 * Each prints `listening <port>` when ready. Arguments: role, upstream URL, Redis URL.
 */

const [role, upstreamUrl = '', redisUrl = ''] = process.argv.slice(2)

const initializeResult = { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'bench-upstream', version: '1.0.0' } }
const toolsResult = { tools: [{ name: 'echo', description: 'Echo', inputSchema: { type: 'object', properties: {} } }] }

async function startUpstream (): Promise<number> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      let message: { id?: unknown, method?: string } = {}
      try { message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof message } catch {}
      if (message.id === undefined) {
        response.writeHead(202).end()
        return
      }
      const result = message.method === 'initialize' ? initializeResult : toolsResult
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

async function startGateway (): Promise<number> {
  const config = validateConfig({
    listen: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
    redis: { url: redisUrl, keyPrefix: 'bench:' },
    // The sessions a run creates (BENCH_SESSIONS) must all still be live when the last one is measured.
    sessions: { idleTimeout: '24h', maxLifetime: '24h' },
    routes: [{ path: '/mcp', upstream: upstreamUrl }]
  })
  const app = await buildGateway(config)
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

const starters: Record<string, () => Promise<number>> = { upstream: startUpstream, bare: startBareProxy, gateway: startGateway }
const start = starters[role ?? '']
if (start === undefined) {
  process.stderr.write(`unknown role ${String(role)}\n`)
  process.exit(2)
}
process.stdout.write(`listening ${await start()}\n`)
// Exit through process.exit so that --cpu-prof writes its profile.
process.on('SIGINT', () => process.exit(0))
