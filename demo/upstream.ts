import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import * as z from 'zod/v4'

/*
 * A small stateless MCP server built with the official SDK, the kind of upstream the gateway is for:
 * a new server and transport per request, no sessions. Used by `npm run demo`, by docker-compose and
 * by the tests (one instance answering JSON, one answering SSE).
 */

export type ResponseMode = 'json' | 'sse'

export interface DemoUpstreamOptions {
  readonly host?: string
  readonly port?: number
  readonly path?: string
  /** `sse` (the SDK's default) streams every reply as text/event-stream; `json` answers application/json. */
  readonly responseMode?: ResponseMode
  /** Called right before the second message of `stream-two-messages` is written (tests). */
  readonly onSecondMessageWrite?: () => void
  /** Keep every request in `received` (tests); off by default so a long-running demo does not grow. */
  readonly recordRequests?: boolean
}

export interface DemoUpstream {
  readonly url: string
  /** With `recordRequests`: every request as the upstream received it. */
  readonly received: Array<{ method: string, headers: IncomingMessage['headers'], body: string }>
  close (): Promise<void>
}

function buildMcpServer (options: DemoUpstreamOptions): McpServer {
  const server = new McpServer({ name: 'demo-upstream', version: '1.0.0' }, { capabilities: { logging: {} } })
  server.registerTool('echo', {
    description: 'Returns its text argument',
    inputSchema: { text: z.string() }
  }, async ({ text }) => ({ content: [{ type: 'text', text }] }))
  server.registerTool('add', {
    description: 'Adds two numbers',
    inputSchema: { a: z.number(), b: z.number() }
  }, async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }))
  server.registerTool('stream-two-messages', {
    description: 'Sends a log notification, waits gapMs, sends another, then returns (SSE only)',
    inputSchema: { gapMs: z.number().int().min(0).max(10_000).default(500) }
  }, async ({ gapMs }, extra) => {
    await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'first message' } })
    await sleep(gapMs)
    options.onSecondMessageWrite?.()
    await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'second message' } })
    return { content: [{ type: 'text', text: 'done' }] }
  })
  server.registerResource('greeting', 'demo://greeting', { mimeType: 'text/plain' }, async (uri) => ({
    contents: [{ uri: uri.href, text: 'Hello from the demo upstream' }]
  }))
  return server
}

async function readBody (request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function sendJsonRpcError (response: ServerResponse, status: number, code: number, message: string): void {
  response.writeHead(status, { 'content-type': 'application/json' })
  response.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }))
}

export async function startDemoUpstream (options: DemoUpstreamOptions = {}): Promise<DemoUpstream> {
  const path = options.path ?? '/mcp'
  const received: DemoUpstream['received'] = []

  async function handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request)
    if (options.recordRequests === true) received.push({ method: request.method ?? '', headers: request.headers, body })
    if (new URL(request.url ?? '/', 'http://upstream').pathname !== path) {
      sendJsonRpcError(response, 404, -32000, 'Not found')
      return
    }
    if (request.method !== 'POST') {
      // Stateless: no standalone stream to offer, no session to delete.
      sendJsonRpcError(response, 405, -32000, 'Method not allowed.')
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
    } catch {
      sendJsonRpcError(response, 400, -32700, 'Parse error')
      return
    }
    const server = buildMcpServer(options)
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: options.responseMode === 'json'
    })
    response.on('close', () => {
      void transport.close()
      void server.close()
    })
    await server.connect(transport)
    await transport.handleRequest(request, response, parsed)
  }

  const httpServer: Server = createServer((request, response) => {
    handle(request, response).catch(() => {
      if (!response.headersSent) sendJsonRpcError(response, 500, -32603, 'Internal error')
      else response.destroy()
    })
  })
  await new Promise<void>((resolve) => httpServer.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve))
  const address = httpServer.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${host}:${address.port}${path}`,
    received,
    close: async () => {
      httpServer.closeAllConnections()
      await new Promise<void>((resolve) => httpServer.close(() => resolve()))
    }
  }
}
