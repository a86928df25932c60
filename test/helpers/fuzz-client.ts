import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import type { FuzzRequest, MessageSpec, Principal, RouteKind } from './fuzz-requests.js'
import { DELAY_HEADER, MODE_HEADER } from './misbehaving-upstream.js'

/*
 * The route fuzzer's client (docs/testing.md, "The route fuzzer"): turns a symbolic request into
 * bytes against the live state (the sessions it holds, the event ids the gateways handed out),
 * sends it with node:http (which lets a test write any Host and Latin-1 header values), reads the
 * answer within bounds and learns from it (minted ids, event ids, ended sessions).
 */

export const MAX_BODY_BYTES = 64 * 1024
const MODERN_VERSION = '2026-07-28'
const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion'
/** Response headers must come within this (the slowest upstream answer is 2.5 s, route timeouts 1.5 s). */
const HEADERS_DEADLINE_MS = 8_000
/** An SSE body is read this long, then the client hangs up (a dropped client is part of the fuzz). */
const BODY_DEADLINE_MS = 3_000
const MAX_READ_BYTES = 1 << 20

export interface GatewayUnderFuzz {
  readonly name: string
  readonly port: number
  readonly routes: Partial<Record<RouteKind, string>>
  /** How callers prove who they are: a header's value, a JWT, or nothing (sessions unbound). */
  readonly binding: 'header' | 'jwt' | 'none'
  readonly keyPrefix: string
  readonly trustProxy: boolean
}

export interface Credentials {
  /** Headers proving each principal, and a forged one. */
  readonly header: Record<Principal | 'forged', Record<string, string>>
  readonly jwt: Record<Principal | 'forged', Record<string, string>>
}

/** A request as sent. */
export interface WireRequest {
  readonly gateway: string
  readonly port: number
  readonly method: string
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: Buffer | undefined
  /** Content-Length beyond the body: the client hangs up mid-body. */
  readonly abortMidBody: boolean
  readonly chunked: boolean
  readonly drop: boolean
}

export interface Answer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
  /** The client stopped reading (its deadline, or `drop`). */
  readonly cutByClient: boolean
  /** No answer: the connection failed or closed before any response headers. */
  readonly failure?: string
  /** No response headers before the deadline. */
  readonly hung?: boolean
  readonly durationMs: number
}

interface PooledSession { readonly id: string, touched: number }

export interface IssuedEventId {
  readonly gateway: string
  readonly route: RouteKind
  readonly owner: Principal | 'none' | 'forged'
  readonly sessionId: string
  readonly id: string
}

export class FuzzState {
  readonly gateways: ReadonlyMap<string, GatewayUnderFuzz>
  readonly credentials: Credentials
  readonly idleTimeout: number
  /** Every session id a gateway handed out, with when it was last used. */
  readonly minted = new Map<string, { gateway: string, lastUsed: number }>()
  readonly ended = new Set<string>()
  readonly issued: IssuedEventId[] = []
  readonly tokensUsed = new Set<string>()
  readonly #pool = new Map<string, PooledSession>()
  #requestCounter = 0
  requestsSent = 0

  constructor (gateways: readonly GatewayUnderFuzz[], credentials: Credentials, idleTimeout: number) {
    this.gateways = new Map(gateways.map((gateway) => [gateway.name, gateway]))
    this.credentials = credentials
    this.idleTimeout = idleTimeout
    for (const kind of ['jwt'] as const) for (const headers of Object.values(credentials[kind])) for (const value of Object.values(headers)) this.tokensUsed.add(value.replace(/^Bearer /, ''))
  }

  gateway (name: string): GatewayUnderFuzz {
    const gateway = this.gateways.get(name)
    if (gateway === undefined) throw new Error(`no gateway ${name}`)
    return gateway
  }

  nextRequestId (): string {
    this.#requestCounter++
    return `fz-${this.#requestCounter}`
  }

  credentialsFor (gateway: GatewayUnderFuzz, as: Principal | 'none' | 'forged'): Record<string, string> {
    if (gateway.binding === 'none' || as === 'none') return {}
    return this.credentials[gateway.binding][as]
  }

  routePath (gateway: GatewayUnderFuzz, route: RouteKind): string {
    return gateway.routes[route] ?? '/nowhere'
  }

  /** The route a session of this kind lives on (a path with no route: the legacy one's). */
  sessionRoute (gateway: GatewayUnderFuzz, route: RouteKind): RouteKind {
    return gateway.routes[route] === undefined || route === 'unknown' ? 'legacy' : route
  }

  noteUsed (sessionId: string): void {
    const minted = this.minted.get(sessionId)
    if (minted !== undefined) minted.lastUsed = Date.now()
  }

  noteMinted (gateway: string, sessionId: string): void {
    this.minted.set(sessionId, { gateway, lastUsed: Date.now() })
  }

  noteEnded (sessionId: string): void {
    this.ended.add(sessionId)
    for (const [key, pooled] of this.#pool) if (pooled.id === sessionId) this.#pool.delete(key)
  }

  /**
   * A live session of `owner` on that route: the pooled one while it is surely live (used within
   * half the idle timeout), else a new one (a well-behaved initialize).
   */
  async liveSession (gateway: GatewayUnderFuzz, route: RouteKind, owner: Principal): Promise<string | undefined> {
    const kind = this.sessionRoute(gateway, route)
    const key = `${gateway.name} ${kind} ${owner}`
    const pooled = this.#pool.get(key)
    if (pooled !== undefined && Date.now() - pooled.touched < this.idleTimeout / 2 && !this.ended.has(pooled.id)) {
      pooled.touched = Date.now()
      return pooled.id
    }
    const answer = await send({
      gateway: gateway.name,
      port: gateway.port,
      method: 'POST',
      path: this.routePath(gateway, kind),
      headers: {
        host: `127.0.0.1:${gateway.port}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-request-id': `${this.nextRequestId()}-setup`,
        ...this.credentialsFor(gateway, owner)
      },
      body: Buffer.from(JSON.stringify(initializeMessage(1, '2025-11-25'))),
      abortMidBody: false,
      chunked: false,
      drop: false
    })
    this.requestsSent++
    const id = answer.headers['mcp-session-id']
    if (typeof id !== 'string') return undefined
    this.noteMinted(gateway.name, id)
    this.#pool.set(key, { id, touched: Date.now() })
    return id
  }

  /** Learns from an answer: ids minted, sessions ended, event ids handed out. */
  learn (request: FuzzRequest, wire: WireRequest, sessionId: string | undefined, answer: Answer): void {
    const minted = answer.headers['mcp-session-id']
    if (typeof minted === 'string' && answer.status >= 200 && answer.status < 300) this.noteMinted(wire.gateway, minted)
    if (sessionId !== undefined) this.noteUsed(sessionId)
    if (sessionId !== undefined && wire.method === 'DELETE' && answer.status >= 200 && answer.status < 300) this.noteEnded(sessionId)
    const contentType = String(answer.headers['content-type'] ?? '')
    if (contentType.startsWith('text/event-stream') && sessionId !== undefined && !this.ended.has(sessionId)) {
      for (const match of answer.body.toString('latin1').matchAll(/^id: ?(.*)$/gm)) {
        const id = (match[1] as string).trim()
        if (id !== '' && !this.issued.some((issued) => issued.id === id)) {
          this.issued.push({ gateway: wire.gateway, route: this.sessionRoute(this.gateway(wire.gateway), request.route), owner: request.as, sessionId, id })
        }
      }
    }
  }

  /** A session id that was well-formed but is surely not live: one this run ended, else one never minted. */
  endedSession (pick: number): string {
    const ended = [...this.ended]
    return ended.length > 0 ? ended[pick % ended.length] as string : 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.mxdzx8m3'
  }
}

export function initializeMessage (id: number | string, protocolVersion: string): Record<string, unknown> {
  return { jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion, capabilities: { roots: { listChanged: true } }, clientInfo: { name: 'route-fuzzer', version: '1' } } }
}

function paramsFor (method: string, name: string | undefined): Record<string, unknown> {
  if (name === undefined) return {}
  if (method === 'resources/read' || method === 'resources/subscribe' || method === 'resources/unsubscribe') return { uri: name }
  if (method === 'logging/setLevel') return { level: name }
  return { name, arguments: {} }
}

/** The JSON value of one message. */
export function messageValue (message: MessageSpec): unknown {
  switch (message.kind) {
    case 'initialize': return initializeMessage(message.id, message.version)
    case 'response': return { jsonrpc: '2.0', id: message.id, result: {} }
    case 'json': return message.value
    case 'notification': {
      const params: Record<string, unknown> = message.method === 'notifications/cancelled' ? { requestId: 1 } : {}
      if (message.era === 'modern') params._meta = { [PROTOCOL_VERSION_META_KEY]: MODERN_VERSION }
      return { jsonrpc: '2.0', method: message.method, params }
    }
    case 'request': {
      const params = paramsFor(message.method, message.name)
      if (message.era !== 'legacy') {
        params._meta = {
          [PROTOCOL_VERSION_META_KEY]: message.era === 'modern' ? MODERN_VERSION : message.badVersion,
          'io.modelcontextprotocol/clientInfo': { name: 'route-fuzzer', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': {}
        }
      }
      return { jsonrpc: '2.0', id: message.id, method: message.method, params }
    }
  }
}

/** `Mcp-Name` as a 2026-07-28 client writes it: plain ASCII as is, anything else `=?base64?…?=`. */
function encodedName (value: string): string {
  return /^[\x20-\x7e]*$/.test(value) && !value.startsWith('=?base64?') ? value : `=?base64?${Buffer.from(value, 'utf8').toString('base64')}?=`
}

function bodyBytes (request: FuzzRequest): { body: Buffer | undefined, chunked: boolean, abortMidBody: boolean } {
  const body = request.body
  switch (body.kind) {
    case 'none': return { body: undefined, chunked: false, abortMidBody: false }
    case 'bytes': return { body: Buffer.from(body.bytes), chunked: false, abortMidBody: false }
    case 'deep': return { body: Buffer.from('['.repeat(body.depth) + ']'.repeat(body.depth)), chunked: false, abortMidBody: false }
    case 'oversized': return { body: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: 'x'.repeat(MAX_BODY_BYTES) } })), chunked: false, abortMidBody: false }
    case 'messages': {
      const values = body.messages.map(messageValue)
      const text = Buffer.from(JSON.stringify(body.batch || values.length > 1 ? values : values[0]), 'utf8')
      if (body.framing === 'cut-json') return { body: text.subarray(0, Math.min(body.cut, text.length - 1)), chunked: false, abortMidBody: false }
      return { body: text, chunked: body.framing === 'chunked', abortMidBody: body.framing === 'abort-mid-body' }
    }
  }
}

/** The first message of a 2026-07-28 body, for the mirrored headers. */
function modernMessage (request: FuzzRequest): Extract<MessageSpec, { kind: 'request' | 'notification' }> | undefined {
  if (request.body.kind !== 'messages') return undefined
  const first = request.body.messages[0]
  if (first === undefined || (first.kind !== 'request' && first.kind !== 'notification') || first.era === 'legacy') return undefined
  return first
}

export interface ResolvedRequest {
  readonly wire: WireRequest
  /** The session id the request carries, when it is one of the gateway's. */
  readonly sessionId: string | undefined
  /** The session belongs to another principal than the caller (both real). */
  readonly stranger: boolean
}

/** The request's bytes, against the state of now. */
export async function resolve (state: FuzzState, request: FuzzRequest): Promise<ResolvedRequest> {
  const gateway = state.gateway(request.gateway)
  const port = gateway.port
  const fill = (value: string): string => value.replaceAll('{port}', String(port))
  const headers: Record<string, string> = {
    host: `127.0.0.1:${port}`,
    'x-request-id': state.nextRequestId(),
    [MODE_HEADER]: request.upstreamMode,
    [DELAY_HEADER]: String(request.delay),
    ...state.credentialsFor(gateway, request.as)
  }
  const spec = request.headers
  if (spec.host !== undefined) headers.host = fill(spec.host)
  if (spec.xForwardedHost !== undefined) headers['x-forwarded-host'] = fill(spec.xForwardedHost)
  if (spec.xForwardedProto !== undefined) headers['x-forwarded-proto'] = spec.xForwardedProto
  if (spec.xForwardedFor !== undefined) headers['x-forwarded-for'] = spec.xForwardedFor
  if (spec.origin !== undefined) headers.origin = fill(spec.origin)
  if (spec.contentType !== undefined) headers['content-type'] = spec.contentType
  else if (request.body.kind !== 'none') headers['content-type'] = 'application/json'
  headers.accept = spec.accept ?? 'application/json, text/event-stream'
  if (spec.accessControlRequestMethod !== undefined) headers['access-control-request-method'] = spec.accessControlRequestMethod
  const modern = modernMessage(request)
  if (request.mirrorModernHeaders && modern !== undefined) {
    headers['mcp-protocol-version'] = MODERN_VERSION
    headers['mcp-method'] = modern.method
    if (modern.kind === 'request' && modern.name !== undefined) headers['mcp-name'] = encodedName(modern.name)
  }
  if (spec.protocolVersion !== undefined) headers['mcp-protocol-version'] = spec.protocolVersion
  if (spec.mcpMethod !== undefined) headers['mcp-method'] = spec.mcpMethod
  if (spec.mcpName !== undefined) headers['mcp-name'] = spec.mcpName

  let sessionId: string | undefined
  let stranger = false
  const ref = request.session
  const real = (as: FuzzRequest['as']): as is Principal => as === 'alice' || as === 'bob'
  if (ref.kind === 'live') {
    const owner = ref.owner !== 'caller' ? ref.owner : real(request.as) ? request.as : 'alice'
    const event = request.lastEventId?.kind === 'issued' ? pickIssued(state, request, owner) : undefined
    sessionId = event !== undefined && !state.ended.has(event.sessionId) ? event.sessionId : await state.liveSession(gateway, request.route, owner)
    stranger = gateway.binding !== 'none' && real(request.as) && request.as !== owner
  } else if (ref.kind === 'other-route') {
    const route = state.sessionRoute(gateway, request.route) === 'legacy' ? 'auto' : 'legacy'
    sessionId = await state.liveSession(gateway, route, ref.owner)
  } else if (ref.kind === 'ended') {
    sessionId = state.endedSession(state.requestsSent)
  } else if (ref.kind === 'text') {
    headers['mcp-session-id'] = ref.value
  }
  if (sessionId !== undefined) headers['mcp-session-id'] = sessionId

  const eventRef = request.lastEventId
  if (eventRef?.kind === 'text') headers['last-event-id'] = eventRef.value
  else if (eventRef?.kind === 'issued') {
    const owner = ref.kind !== 'live' ? undefined : ref.owner !== 'caller' ? ref.owner : real(request.as) ? request.as : 'alice'
    const issued = pickIssued(state, request, owner) ?? state.issued[eventRef.pick % Math.max(1, state.issued.length)]
    if (issued !== undefined) {
      const dot = issued.id.lastIndexOf('.')
      const position = Number(issued.id.slice(dot + 1))
      headers['last-event-id'] = dot > 0 && Number.isFinite(position) ? `${issued.id.slice(0, dot)}.${position + eventRef.shift}` : issued.id
    } else {
      headers['last-event-id'] = 'gAAAAAAAAAAAAAAAA.1'
    }
  }

  const { body, chunked, abortMidBody } = bodyBytes(request)
  return {
    wire: { gateway: gateway.name, port, method: request.method, path: `${state.routePath(gateway, request.route)}${request.pathSuffix}`, headers, body, abortMidBody, chunked, drop: request.client === 'drop' },
    sessionId,
    stranger
  }
}

function pickIssued (state: FuzzState, request: FuzzRequest, owner: Principal | undefined): IssuedEventId | undefined {
  if (request.lastEventId?.kind !== 'issued') return undefined
  const gateway = state.gateway(request.gateway)
  const route = state.sessionRoute(gateway, request.route)
  const candidates = state.issued.filter((issued) => issued.gateway === request.gateway && issued.route === route && (owner === undefined || issued.owner === owner))
  return candidates.length === 0 ? undefined : candidates[request.lastEventId.pick % candidates.length]
}

/** Sends one request and reads its answer within bounds. */
export async function send (wire: WireRequest): Promise<Answer> {
  const started = Date.now()
  return await new Promise<Answer>((resolveAnswer) => {
    let settled = false
    const done = (answer: Omit<Answer, 'durationMs'>): void => {
      if (settled) return
      settled = true
      clearTimeout(headersTimer)
      resolveAnswer({ ...answer, durationMs: Date.now() - started })
    }
    const headers: Record<string, string> = { ...wire.headers }
    if (wire.body !== undefined && !wire.chunked) headers['content-length'] = String(wire.body.length + (wire.abortMidBody ? 10 : 0))
    // Explicit: Node chunks a POST body by itself, but would send a GET's or a DELETE's unframed.
    if (wire.body !== undefined && wire.chunked) headers['transfer-encoding'] = 'chunked'
    let outgoing: ReturnType<typeof httpRequest>
    try {
      outgoing = httpRequest({ host: '127.0.0.1', port: wire.port, method: wire.method, path: wire.path, headers, agent: false })
    } catch (error) {
      // Node refuses to send it (an invalid header value): nothing reached the gateway.
      done({ status: 0, headers: {}, body: Buffer.alloc(0), cutByClient: true, failure: `not sendable: ${(error as Error).message}` })
      return
    }
    const headersTimer = setTimeout(() => {
      outgoing.destroy()
      done({ status: 0, headers: {}, body: Buffer.alloc(0), cutByClient: false, hung: true })
    }, HEADERS_DEADLINE_MS)
    outgoing.on('response', (response) => {
      clearTimeout(headersTimer)
      const chunks: Buffer[] = []
      let size = 0
      const finish = (cutByClient: boolean): void => {
        clearTimeout(bodyTimer)
        done({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks), cutByClient })
      }
      const cut = (): void => {
        finish(true)
        response.destroy()
        outgoing.destroy()
      }
      const bodyTimer = setTimeout(cut, wire.drop ? 0 : BODY_DEADLINE_MS)
      response.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= MAX_READ_BYTES) chunks.push(chunk)
      })
      response.on('end', () => { finish(false) })
      response.on('error', () => { finish(true) })
      response.on('aborted', () => { finish(false) })
      response.on('close', () => { finish(false) })
    })
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      done({ status: 0, headers: {}, body: Buffer.alloc(0), cutByClient: wire.abortMidBody, failure: error.code ?? error.message })
    })
    if (wire.body === undefined) {
      outgoing.end()
    } else if (wire.abortMidBody) {
      outgoing.write(wire.body)
      // The client goes away before the body it announced is complete.
      setTimeout(() => {
        outgoing.destroy()
        done({ status: 0, headers: {}, body: Buffer.alloc(0), cutByClient: true, failure: 'client hung up mid-body' })
      }, 100)
    } else {
      outgoing.end(wire.body)
    }
  })
}

/** The bytes of a request on the wire (HTTP/1.1, Content-Length framing). */
function serialize (wire: WireRequest): Buffer {
  const body = wire.body ?? Buffer.alloc(0)
  const lines = [`${wire.method} ${wire.path} HTTP/1.1`]
  for (const [name, value] of Object.entries(wire.headers)) lines.push(`${name}: ${value}`)
  lines.push(`content-length: ${body.length}`)
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body])
}

interface ParsedResponse { status: number, headers: IncomingHttpHeaders, body: Buffer, rest: Buffer }

/** One HTTP/1.1 response from the front of `data` (Content-Length, chunked, or to the end). */
function parseResponse (data: Buffer): ParsedResponse | undefined {
  const end = data.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const head = data.subarray(0, end).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0)
  const headers: IncomingHttpHeaders = {}
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  let rest: Buffer = data.subarray(end + 4)
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length'])
    return { status, headers, body: rest.subarray(0, length), rest: rest.subarray(length) }
  }
  if (String(headers['transfer-encoding'] ?? '').toLowerCase() === 'chunked') {
    const chunks: Buffer[] = []
    for (;;) {
      const lineEnd = rest.indexOf('\r\n')
      if (lineEnd < 0) break
      const size = parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16)
      rest = rest.subarray(lineEnd + 2)
      if (!Number.isFinite(size) || size === 0) {
        rest = rest.subarray(Math.min(2, rest.length))
        break
      }
      chunks.push(rest.subarray(0, size))
      rest = rest.subarray(size + 2)
    }
    return { status, headers, body: Buffer.concat(chunks), rest }
  }
  return { status, headers, body: rest, rest: Buffer.alloc(0) }
}

/**
 * A request sent in two parts: its first bytes at once (the connection is then no longer idle), the
 * rest when `finish` is called. Sent into a gateway that began closing in between, it meets the
 * gateway mid-shutdown; the answer must still be a documented one.
 */
export function halfSent (wire: WireRequest): { finish: () => void, connected: Promise<number | undefined>, answer: Promise<Answer> } {
  const started = Date.now()
  const bytes = serialize({ ...wire, headers: { ...wire.headers, connection: 'close' } })
  const split = Math.min(bytes.indexOf('\r\n') + 2, bytes.length)
  const socket = connect(wire.port, '127.0.0.1')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.write(bytes.subarray(0, split))
  const answer = new Promise<Answer>((resolveAnswer) => {
    const timer = setTimeout(() => { socket.destroy() }, 15_000)
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      const response = parseResponse(Buffer.concat(chunks))
      resolveAnswer(response === undefined
        ? { status: 0, headers: {}, body: Buffer.alloc(0), cutByClient: false, failure: 'connection closed without an answer', durationMs: Date.now() - started }
        : { status: response.status, headers: response.headers, body: response.body, cutByClient: false, durationMs: Date.now() - started })
    })
  })
  /** Its local port once connected (how the gateway's side names it), undefined if it closed first. */
  const connected = new Promise<number | undefined>((resolveConnected) => {
    socket.once('connect', () => { resolveConnected(socket.localPort) })
    socket.once('close', () => { resolveConnected(undefined) })
  })
  return { finish: () => { socket.write(bytes.subarray(split)) }, connected, answer }
}
