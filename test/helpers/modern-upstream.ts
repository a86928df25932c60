import { createMcpHandler, McpServer } from '@modelcontextprotocol/server'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import * as z from 'zod/v4'

/*
 * An upstream built with the official SDK v2 (`createMcpHandler`): `legacy: 'stateless'` serves both
 * eras (modern per-request metadata, and legacy stateless), `legacy: 'reject'` is modern-only.
 */

export interface ModernUpstream {
  readonly url: string
  /** Every request as received: method and headers. */
  readonly received: Array<{ method: string, headers: IncomingMessage['headers'], body: string }>
  close (): Promise<void>
}

function buildServer (): McpServer {
  const server = new McpServer({ name: 'modern-upstream', version: '2.0.0' }, { capabilities: { tools: {}, resources: {}, prompts: {} } })
  server.registerTool('echo', { description: 'Returns its text', inputSchema: z.object({ text: z.string() }) },
    async ({ text }) => ({ content: [{ type: 'text', text }] }))
  server.registerResource('greeting', 'demo://greeting', { mimeType: 'text/plain' },
    async (uri) => ({ contents: [{ uri: uri.href, text: 'Hello from the modern upstream' }] }))
  server.registerPrompt('greet', { description: 'A greeting', argsSchema: z.object({ name: z.string() }) },
    async ({ name }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello ${name}` } }] }))
  return server
}

async function readBody (request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

export async function startModernUpstream (legacy: 'stateless' | 'reject'): Promise<ModernUpstream> {
  const handler = createMcpHandler(() => buildServer(), { legacy })
  const received: ModernUpstream['received'] = []

  async function serve (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request)
    received.push({ method: request.method ?? '', headers: request.headers, body: body.toString('utf8') })
    const headers = new Headers()
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string') headers.set(name, value)
    }
    const webRequest = new Request(`http://${request.headers.host ?? 'upstream'}${request.url ?? '/'}`, {
      method: request.method ?? 'GET',
      headers,
      ...(body.length > 0 ? { body } : {})
    })
    const webResponse = await handler.fetch(webRequest)
    response.writeHead(webResponse.status, Object.fromEntries(webResponse.headers))
    if (webResponse.body === null) {
      response.end()
      return
    }
    Readable.fromWeb(webResponse.body as import('node:stream/web').ReadableStream).pipe(response)
  }

  const server = createServer((request, response) => {
    serve(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500)
      response.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    received,
    close: async () => {
      await handler.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
