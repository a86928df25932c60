import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'

/*
 * One HTTP request with exactly the headers given (fetch cannot set Host, and normalises others),
 * to see what the gateway answers to heads no well-behaved client sends.
 */

export interface RawAnswer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

export interface RawRequest {
  readonly method?: string
  readonly path?: string
  readonly headers?: Record<string, string>
  readonly body?: string | Buffer
  /** Milliseconds before the request is given up (default 10 s). */
  readonly timeout?: number
}

export async function rawRequest (port: number, init: RawRequest = {}): Promise<RawAnswer> {
  const body = init.body
  return await new Promise((resolve, reject) => {
    const outgoing = httpRequest({
      host: '127.0.0.1',
      port,
      method: init.method ?? 'POST',
      path: init.path ?? '/mcp',
      headers: { ...init.headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) }
    }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }) })
      response.on('error', reject)
    })
    outgoing.setTimeout(init.timeout ?? 10_000, () => outgoing.destroy(new Error('no answer in time')))
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}
