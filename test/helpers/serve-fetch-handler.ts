import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import type { ReadableStream as NodeReadableStream } from 'node:stream/web'

/*
 * Serves a fetch-shaped handler (the SDK v2's `createMcpHandler(...).fetch`) on a node:http port,
 * as a fetch-based server runtime would: a client that closes its connection aborts the request.
 */

export interface ServedFetchHandler {
  readonly url: string
  readonly server: Server
  close (): Promise<void>
}

export type RequestObserver = (request: IncomingMessage, body: Buffer) => void

async function readBody (request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

export async function serveFetchHandler (handle: (request: Request) => Promise<Response>, observe?: RequestObserver): Promise<ServedFetchHandler> {
  async function serve (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request)
    observe?.(request, body)
    const headers = new Headers()
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string') headers.set(name, value)
    }
    const closed = new AbortController()
    response.once('close', () => { if (!response.writableFinished) closed.abort() })
    const webResponse = await handle(new Request(`http://${request.headers.host ?? 'upstream'}${request.url ?? '/'}`, {
      method: request.method ?? 'GET',
      headers,
      signal: closed.signal,
      ...(body.length > 0 ? { body } : {})
    }))
    response.writeHead(webResponse.status, Object.fromEntries(webResponse.headers))
    if (webResponse.body === null) {
      response.end()
      return
    }
    const stream = Readable.fromWeb(webResponse.body as NodeReadableStream)
    closed.signal.addEventListener('abort', () => { stream.destroy() }, { once: true })
    stream.on('error', () => { response.destroy() })
    stream.pipe(response)
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
    server,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
