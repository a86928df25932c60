import { SseParser } from '../../src/mcp/sse-parser.js'

/* Plain-HTTP MCP calls, to see exactly what the gateway answers (status, headers, body). */

export const LATEST_LEGACY_VERSION = '2025-11-25'

export interface HttpAnswer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** The body as JSON, or the JSON-RPC messages of an SSE body; undefined when neither. */
  readonly messages: unknown[]
}

export function initializeRequest (id: number | string = 1, protocolVersion = LATEST_LEGACY_VERSION): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion, capabilities: { roots: { listChanged: true } }, clientInfo: { name: 'gateway-test', version: '1.0.0' } }
  }
}

function parseOrUndefined (text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

function messagesOf (contentType: string, text: string): unknown[] {
  if (contentType.startsWith('text/event-stream')) {
    // The priming event of a resumable stream (an id, no data) carries no message: clients skip it.
    return new SseParser().push(Buffer.from(text + '\n\n')).filter((event) => event.data !== '').map((event) => parseOrUndefined(event.data))
  }
  const parsed = parseOrUndefined(text)
  if (parsed === undefined) return []
  return Array.isArray(parsed) ? parsed : [parsed]
}

export async function request (url: string, init: { method?: string, headers?: Record<string, string>, body?: unknown, rawBody?: string } = {}): Promise<HttpAnswer> {
  const method = init.method ?? 'POST'
  const headers: Record<string, string> = { accept: 'application/json, text/event-stream', ...init.headers }
  let body: string | undefined
  if (init.rawBody !== undefined) body = init.rawBody
  else if (init.body !== undefined) body = JSON.stringify(init.body)
  if (body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json'
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return { status: response.status, headers: response.headers, text, messages: messagesOf(response.headers.get('content-type') ?? '', text) }
}

export async function post (url: string, body: unknown, sessionId?: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return await request(url, { body, headers: { ...headers, ...(sessionId === undefined ? {} : { 'mcp-session-id': sessionId }) } })
}

/** Initializes and returns the minted session id (throws when none was minted). */
export async function openSession (url: string): Promise<string> {
  const answer = await post(url, initializeRequest())
  const sessionId = answer.headers.get('mcp-session-id')
  if (answer.status !== 200 || sessionId === null) throw new Error(`initialize did not mint a session: ${answer.status} ${answer.text}`)
  return sessionId
}
