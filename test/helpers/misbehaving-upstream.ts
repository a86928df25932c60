import { randomUUID } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/*
 * An upstream that answers well or badly on demand, for the route fuzzer (docs/testing.md, "The
 * route fuzzer"). Its role says what a good answer is: a stateless legacy server, a 2026-07-28
 * server (server/discover, subscriptions/listen) or a stateful legacy server (its own
 * Mcp-Session-Id, 404 for a session it does not hold). The client picks how each request is answered
 * with the `x-fuzz-mode` header, which the gateway forwards (and the era bridge sends along):
 * JSON, SSE with or without event ids, a 401 challenge naming this server's metadata, 400, 404,
 * 500, a 202, a body that is not JSON, a connection reset before the headers or in the middle of an
 * SSE body, a slow answer (`x-fuzz-delay` ms). Requests the gateway makes on its own (the era probe,
 * health checks, replays) carry no mode and get the good answer. Every answer it sends carries
 * `x-fuzz-upstream` (and its error bodies `fuzz-upstream:<name>`), so that the fuzzer can tell an upstream answer passed through from one the
 * gateway made.
 */

export type UpstreamRole = 'legacy' | 'modern' | 'stateful'

export const upstreamModes = ['normal', 'json', 'sse', 'sse-no-ids', 'slow', 'slow-sse', 'unauthorized', 'bad-request',
  'not-found', 'server-error', 'accepted', 'garbage', 'reset-before-headers', 'reset-mid-stream'] as const
export type UpstreamMode = typeof upstreamModes[number]

export const MODE_HEADER = 'x-fuzz-mode'
export const DELAY_HEADER = 'x-fuzz-delay'
export const UPSTREAM_MARK_HEADER = 'x-fuzz-upstream'
/** In every error body too: the era bridge passes an upstream's error on with its body, not its headers. */
export const UPSTREAM_MARK_BODY = 'fuzz-upstream:'
/** The longest delay a request may ask for: a slow answer, never a stuck one. */
const MAX_DELAY_MS = 4_000
const MAX_BODY_BYTES = 1 << 20

export interface MisbehavingUpstream {
  readonly name: string
  readonly role: UpstreamRole
  readonly url: string
  /** The metadata URL its 401 challenges name: the gateway must never pass it to a client. */
  readonly metadataUrl: string
  /** TCP connections open now (the gateway's pool included). */
  openConnections (): number
  /** Requests whose answer has not finished yet. */
  activeRequests (): number
  /** How many requests it received. */
  received (): number
  /** Every header value it received, for the check that no gateway session id ever reaches it. */
  readonly headerValues: Set<string>
  close (): Promise<void>
}

interface Message { jsonrpc?: unknown, id?: unknown, method?: unknown, params?: unknown }

function parseMessages (body: string): Message[] | undefined {
  try {
    const parsed = JSON.parse(body) as unknown
    const list = Array.isArray(parsed) ? parsed : [parsed]
    return list.filter((item): item is Message => typeof item === 'object' && item !== null)
  } catch {
    return undefined
  }
}

function headerValue (headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return typeof value === 'string' ? value : undefined
}

const discoverResult = {
  resultType: 'complete',
  supportedVersions: ['2026-07-28'],
  capabilities: { tools: { listChanged: true }, resources: { subscribe: true } },
  serverInfo: { name: 'misbehaving-modern', version: '1' }
}

export async function startMisbehavingUpstream (name: string, role: UpstreamRole): Promise<MisbehavingUpstream> {
  const sockets = new Set<Socket>()
  const sessions = new Set<string>()
  const headerValues = new Set<string>()
  let active = 0
  let received = 0
  let port = 0
  const metadataUrl = (): string => `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`

  /** The good answer to one request, for this role. */
  function resultFor (message: Message): unknown {
    const method = typeof message.method === 'string' ? message.method : ''
    if (method === 'initialize') {
      const params = (message.params ?? {}) as { protocolVersion?: unknown }
      return { protocolVersion: typeof params.protocolVersion === 'string' ? params.protocolVersion : '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: `misbehaving-${role}`, version: '1' } }
    }
    if (role === 'modern') return method === 'server/discover' ? discoverResult : { resultType: 'complete', content: [] }
    if (method === 'tools/list') return { tools: [{ name: 'echo', inputSchema: { type: 'object' } }] }
    return {}
  }

  function replyBody (message: Message | undefined): unknown {
    if (message === undefined) return error(null, -32700, 'Parse error')
    // A legacy server does not know server/discover: the era probe reads this as "legacy".
    if (role !== 'modern' && message.method === 'server/discover') return error(message.id, -32601, 'Method not found')
    return { jsonrpc: '2.0', id: message.id ?? null, result: resultFor(message) }
  }

  const mark = `${UPSTREAM_MARK_BODY}${name}`
  /** A JSON-RPC error of this upstream's, marked. */
  const error = (id: unknown, code: number, message: string): unknown => ({ jsonrpc: '2.0', id: id ?? null, error: { code, message, data: { upstream: mark } } })

  function sendJson (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body)
    response.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), [UPSTREAM_MARK_HEADER]: name, ...headers }).end(text)
  }

  /** Several events: a progress notification, a log message, then the answer (ids when `withIds`). */
  function sendSse (response: ServerResponse, message: Message | undefined, withIds: boolean, spacing: number, headers: Record<string, string> = {}): void {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', [UPSTREAM_MARK_HEADER]: name, ...headers })
    const events = [
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1, total: 2 } },
      { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'half way' } },
      ...(message === undefined || message.id === undefined ? [] : [replyBody(message)])
    ]
    let index = 0
    const next = (): void => {
      if (response.destroyed) return
      if (index >= events.length) {
        response.end()
        return
      }
      const id = withIds ? `id: upstream-${index + 1}\n` : ''
      response.write(`${id}data: ${JSON.stringify(events[index])}\n\n`)
      index++
      if (spacing === 0) next()
      else setTimeout(next, spacing)
    }
    next()
  }

  /** A standalone (GET) stream or a listen stream: a few notifications, then the end; never endless. */
  function sendFiniteStream (response: ServerResponse, withIds: boolean, spacing: number, headers: Record<string, string> = {}): void {
    const notifications = role === 'modern'
      ? [{ jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: {} }, { jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: {} }]
      : [{ jsonrpc: '2.0', method: 'notifications/tools/list_changed' }, { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'tick' } }]
    response.writeHead(200, { 'content-type': 'text/event-stream', [UPSTREAM_MARK_HEADER]: name, ...headers })
    let index = 0
    const next = (): void => {
      if (response.destroyed) return
      if (index >= notifications.length) {
        response.end()
        return
      }
      response.write(`${withIds ? `id: g-${index + 1}\n` : ''}data: ${JSON.stringify(notifications[index])}\n\n`)
      index++
      setTimeout(next, spacing)
    }
    next()
  }

  /** The well-behaved answer of this role. */
  function answerNormally (request: IncomingMessage, response: ServerResponse, messages: Message[] | undefined, mode: 'json' | 'sse' | 'sse-no-ids' | 'slow-sse'): void {
    const method = request.method ?? ''
    const sessionHeader = headerValue(request.headers, 'mcp-session-id')
    const first = messages?.[0]
    const sse = mode !== 'json'
    const spacing = mode === 'slow-sse' ? 150 : 0
    if (role === 'stateful') {
      if (method === 'DELETE') {
        if (sessionHeader !== undefined && sessions.delete(sessionHeader)) {
          response.writeHead(200, { [UPSTREAM_MARK_HEADER]: name }).end()
          return
        }
        sendJson(response, 404, error(null, -32001, 'Session not found'))
        return
      }
      const initialize = messages?.length === 1 && first?.method === 'initialize'
      if (sessionHeader === undefined && !initialize) {
        sendJson(response, 400, error(null, -32000, 'Bad Request: Mcp-Session-Id header is required'))
        return
      }
      if (sessionHeader !== undefined && !sessions.has(sessionHeader)) {
        sendJson(response, 404, error(null, -32001, 'Session not found'))
        return
      }
      if (initialize) {
        const sessionId = randomUUID()
        sessions.add(sessionId)
        if (sse) sendSse(response, first, mode !== 'sse-no-ids', spacing, { 'mcp-session-id': sessionId })
        else sendJson(response, 200, replyBody(first), { 'mcp-session-id': sessionId })
        return
      }
    }
    if (method === 'GET') {
      // A stateless legacy server has nothing to push (405); the others push a few notifications.
      if (role === 'legacy' && mode === 'json') {
        response.writeHead(405, { allow: 'POST', [UPSTREAM_MARK_HEADER]: name }).end()
        return
      }
      sendFiniteStream(response, mode !== 'sse-no-ids', mode === 'slow-sse' ? 300 : 100)
      return
    }
    if (method !== 'POST') {
      response.writeHead(405, { allow: 'GET, POST, DELETE', [UPSTREAM_MARK_HEADER]: name }).end()
      return
    }
    if (messages !== undefined && messages.length > 0 && messages.every((message) => message.id === undefined || message.method === undefined)) {
      // Notifications and responses only.
      response.writeHead(202, { [UPSTREAM_MARK_HEADER]: name }).end()
      return
    }
    if (messages !== undefined && messages.length === 1 && first?.method === 'subscriptions/listen') {
      sendFiniteStream(response, false, mode === 'slow-sse' ? 300 : 100)
      return
    }
    if (sse) {
      sendSse(response, first, mode !== 'sse-no-ids', spacing)
      return
    }
    sendJson(response, 200, messages !== undefined && messages.length > 1 ? messages.filter((message) => message.id !== undefined).map(replyBody) : replyBody(first))
  }

  /** Upstream sessions whose DELETE already got the misbehaviour its request asked for. */
  const misbehavedDeletes = new Set<string>()

  function answer (request: IncomingMessage, response: ServerResponse, body: string): void {
    const requested = headerValue(request.headers, MODE_HEADER) as UpstreamMode | undefined
    let mode: UpstreamMode = requested !== undefined && (upstreamModes as readonly string[]).includes(requested) ? requested : 'normal'
    // The gateway sends a DELETE it could not deliver again (every 5 s, for up to an hour), with the
    // same headers: misbehaving once is the fault to test; every time would be a dead instance.
    const deleted = request.method === 'DELETE' ? headerValue(request.headers, 'mcp-session-id') : undefined
    if (deleted !== undefined && mode !== 'normal') {
      if (misbehavedDeletes.has(deleted)) mode = 'normal'
      else misbehavedDeletes.add(deleted)
    }
    const messages = parseMessages(body)
    const first = messages?.[0]
    switch (mode) {
      case 'normal':
      case 'json':
        return answerNormally(request, response, messages, 'json')
      case 'sse':
      case 'sse-no-ids':
      case 'slow-sse':
        return answerNormally(request, response, messages, mode)
      case 'slow': {
        const delay = Math.min(MAX_DELAY_MS, Math.max(0, Number(headerValue(request.headers, DELAY_HEADER) ?? 500) || 0))
        const timer = setTimeout(() => { if (!response.destroyed) answerNormally(request, response, messages, 'json') }, delay)
        response.once('close', () => clearTimeout(timer))
        return
      }
      case 'unauthorized':
        return sendJson(response, 401, error(first?.id, -32001, 'Unauthorized'),
          { 'www-authenticate': `Bearer resource_metadata="${metadataUrl()}", error="invalid_token"` })
      case 'bad-request':
        return sendJson(response, 400, error(first?.id, -32600, 'Bad Request from upstream'))
      case 'not-found':
        return sendJson(response, 404, error(null, -32001, 'Session not found'))
      case 'server-error':
        response.writeHead(500, { 'content-type': 'text/plain', [UPSTREAM_MARK_HEADER]: name }).end(`upstream exploded (${mark})`)
        return
      case 'accepted':
        response.writeHead(202, { [UPSTREAM_MARK_HEADER]: name }).end()
        return
      case 'garbage':
        response.writeHead(200, { 'content-type': 'application/json', [UPSTREAM_MARK_HEADER]: name }).end(`<html>not json (${mark})`)
        return
      case 'reset-before-headers':
        request.socket.destroy()
        return
      case 'reset-mid-stream':
        response.writeHead(200, { 'content-type': 'text/event-stream', [UPSTREAM_MARK_HEADER]: name })
        response.write(`id: upstream-1\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } })}\n\n`)
        // A partial event, then the connection is cut.
        response.write('data: {"jsonrpc":"2.0","id":')
        setTimeout(() => { request.socket.destroy() }, 20)
    }
  }

  const server = createServer((request, response) => {
    received++
    active++
    response.once('close', () => { active-- })
    for (const value of Object.values(request.headers)) {
      if (typeof value === 'string') headerValues.add(value)
      else if (Array.isArray(value)) for (const item of value) headerValues.add(item)
    }
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= MAX_BODY_BYTES) chunks.push(chunk)
    })
    request.on('error', () => { response.destroy() })
    request.on('end', () => { answer(request, response, Buffer.concat(chunks).toString('utf8')) })
  })
  // Idle pooled connections close soon: "no socket left" is then a fact to wait for, not a timeout.
  server.keepAliveTimeout = 1_000
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
  return {
    name,
    role,
    url: `http://127.0.0.1:${port}/mcp`,
    metadataUrl: metadataUrl(),
    openConnections: () => sockets.size,
    activeRequests: () => active,
    received: () => received,
    headerValues,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
