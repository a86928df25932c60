import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './fixtures.js'

/*
 * A plain-HTTP upstream whose every answer the test scripts: to see exactly what reaches the upstream
 * (headers, body) and to answer in ways no SDK server would (a stream that stalls, a 503, headers
 * named in Connection). `legacyAnswers` plays a stateless legacy server, `modernAnswers` a
 * 2026-07-28 server (server/discover, then an empty result for everything).
 */

export interface ScriptedExchange {
  readonly method: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
  /** The body as a JSON-RPC message; undefined when it is not JSON (or a GET). */
  readonly message: { id?: unknown, method?: string, params?: Record<string, unknown> } | undefined
  readonly request: IncomingMessage
  readonly response: ServerResponse
}

export interface ScriptedUpstream {
  readonly url: string
  /** Every request, in the order received. */
  readonly received: ScriptedExchange[]
  /** Answers one request; set by each test (default: `legacyAnswers`). */
  answer: (exchange: ScriptedExchange) => void
}

export function json (response: ServerResponse, message: unknown, status = 200, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(message))
}

/** A stateless legacy server: initialize gets a result, any other request an empty result, notifications 202. */
export function legacyAnswers ({ message, response, method }: ScriptedExchange): void {
  if (method !== 'POST' || message === undefined) {
    response.writeHead(405).end()
    return
  }
  if (message.id === undefined) {
    response.writeHead(202).end()
    return
  }
  const result = message.method === 'initialize'
    ? { protocolVersion: (message.params?.protocolVersion as string | undefined) ?? '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'scripted-legacy', version: '1' } }
    : {}
  json(response, { jsonrpc: '2.0', id: message.id, result })
}

export const discoverResult = { resultType: 'complete', supportedVersions: ['2026-07-28'], capabilities: { tools: {}, resources: { subscribe: true } }, serverInfo: { name: 'scripted-modern', version: '1' } }

/** A 2026-07-28 server: server/discover, then an empty complete result for every request. */
export function modernAnswers ({ message, response }: ScriptedExchange): void {
  if (message === undefined) {
    response.writeHead(405).end()
    return
  }
  if (message.id === undefined) {
    response.writeHead(202).end()
    return
  }
  json(response, { jsonrpc: '2.0', id: message.id, result: message.method === 'server/discover' ? discoverResult : { resultType: 'complete' } })
}

function parse (body: string): ScriptedExchange['message'] {
  try {
    const parsed = JSON.parse(body) as unknown
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed as ScriptedExchange['message'] : undefined
  } catch {
    return undefined
  }
}

export async function withScriptedUpstream (t: Teardown, answer: (exchange: ScriptedExchange) => void = legacyAnswers): Promise<ScriptedUpstream> {
  const upstream: ScriptedUpstream = { url: '', received: [], answer }
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const exchange: ScriptedExchange = { method: request.method ?? '', headers: request.headers, body, message: parse(body), request, response }
      upstream.received.push(exchange)
      upstream.answer(exchange)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return Object.assign(upstream, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp` })
}
