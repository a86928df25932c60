import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startDemoUpstream, type DemoUpstream } from '../../demo/upstream.js'
import { startModernUpstream, type ModernUpstream } from '../../test/helpers/modern-upstream.js'

/*
 * The soak's upstreams, served from the harness process on loopback ports:
 * - legacy: the demo upstream (stateless, SSE answers, the streamed `stream-two-messages` tool) behind
 *   a small front that adds what a stateless server lacks, a standalone GET stream (an SSE stream
 *   kept open with comments), so that the gateway's forwarded GET streams (`getStream: forward`)
 *   have something to carry. POST and DELETE go through to the demo upstream unchanged.
 * - modern: the SDK v2 modern-only upstream (`legacy: 'reject'`), reached through the era bridge.
 */

const KEEPALIVE_MS = 500
/** The modern upstream keeps every request it saw; the soak empties that record this often. */
const FORGET_EVERY_MS = 1_000

export interface SoakUpstreams {
  readonly legacyUrl: string
  readonly modernUrl: string
  /** The TCP ports the gateways connect to: the sockets still open at the end are counted on them. */
  readonly ports: readonly number[]
  /** GET streams the legacy front holds open right now. */
  openGetStreams (): number
  close (): Promise<void>
}

/** Holds a GET open as an SSE stream until the client (the gateway) leaves. */
function serveGetStream (request: IncomingMessage, response: ServerResponse, open: Set<ServerResponse>): void {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  response.write(': stream open\n\n')
  open.add(response)
  const timer = setInterval(() => { response.write(': keepalive\n\n') }, KEEPALIVE_MS)
  response.once('close', () => {
    clearInterval(timer)
    open.delete(response)
  })
  request.resume()
}

/** Passes a request through to the demo upstream; a client that leaves ends the upstream request too. */
function passThrough (request: IncomingMessage, response: ServerResponse, target: URL, agent: Agent): void {
  const upstream = httpRequest({
    host: target.hostname,
    port: target.port,
    path: target.pathname,
    method: request.method,
    headers: request.headers,
    agent
  }, (answer) => {
    response.writeHead(answer.statusCode ?? 502, answer.headers)
    answer.pipe(response)
  })
  upstream.on('error', () => { response.destroy() })
  response.once('close', () => { if (!response.writableFinished) upstream.destroy() })
  request.pipe(upstream)
}

async function startLegacyFront (demo: DemoUpstream): Promise<{ server: Server, url: string, open: Set<ServerResponse>, agent: Agent }> {
  const target = new URL(demo.url)
  const open = new Set<ServerResponse>()
  const agent = new Agent({ keepAlive: true })
  const server = createServer((request, response) => {
    if (request.method === 'GET') serveGetStream(request, response, open)
    else passThrough(request, response, target, agent)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, open, agent }
}

export async function startSoakUpstreams (): Promise<SoakUpstreams> {
  const demo = await startDemoUpstream({ responseMode: 'sse' })
  const front = await startLegacyFront(demo)
  const modern: ModernUpstream = await startModernUpstream('reject')
  const forget = setInterval(() => { modern.received.length = 0 }, FORGET_EVERY_MS)
  forget.unref()
  return {
    legacyUrl: front.url,
    modernUrl: modern.url,
    ports: [Number(new URL(front.url).port), Number(new URL(modern.url).port)],
    openGetStreams: () => front.open.size,
    async close () {
      clearInterval(forget)
      front.server.closeAllConnections()
      await new Promise<void>((resolve) => front.server.close(() => resolve()))
      front.agent.destroy()
      await demo.close()
      await modern.close()
    }
  }
}
