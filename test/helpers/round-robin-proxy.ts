import { createServer, request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'

/*
 * A round-robin load balancer without sticky routing, as in front of gateway replicas in a real
 * deployment: each HTTP request goes to the next backend in turn, bytes passed on as they come
 * (SSE included). It records where each request went, so that a test can show that a client's
 * answer to a server request reached another replica than the request that asked.
 */

export interface ProxiedRequest {
  readonly backend: number
  readonly method: string
  /** The request body as text (POSTs), for telling a request from a client's answer. */
  readonly body: string
}

export interface RoundRobinProxy {
  readonly url: string
  readonly requests: ProxiedRequest[]
  close (): Promise<void>
}

async function readBody (request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** `origins`: the backends (`http://127.0.0.1:<port>`); `path`: what the proxy serves them under. */
export async function startRoundRobinProxy (origins: readonly string[], path: string): Promise<RoundRobinProxy> {
  let turn = 0
  const requests: ProxiedRequest[] = []
  const server = createServer((incoming, outgoing) => {
    const backend = turn++ % origins.length
    readBody(incoming).then((body) => {
      requests.push({ backend, method: incoming.method ?? 'GET', body: body.toString('utf8') })
      const target = new URL(path, origins[backend])
      const headers = { ...incoming.headers, host: target.host }
      const forwarded = httpRequest(target, { method: incoming.method, headers }, (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(outgoing)
        outgoing.on('close', () => { answer.destroy() })
      })
      forwarded.on('error', () => { outgoing.destroy() })
      forwarded.end(body)
    }).catch(() => { outgoing.destroy() })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    requests,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
