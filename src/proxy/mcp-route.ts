import replyFrom from '@fastify/reply-from'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import { BridgeRelay } from '../bridge/bridge-relay.js'
import { runBridgedCall } from '../bridge/bridged-call.js'
import { LegacyReply } from '../bridge/legacy-reply.js'
import { serveListenStream } from '../bridge/listen-stream.js'
import { ModernUpstreamBridge, type ClientIdentity } from '../bridge/modern-upstream-bridge.js'
import type { RouteConfig } from '../config/validate-config.js'
import { GatewayError, JsonRpcErrorCode } from '../errors.js'
import type { GatewayMetrics } from '../observability/metrics.js'
import type { Tracing } from '../observability/tracing.js'
import { inspectInitializeResponse, mediaType } from '../mcp/initialize-response.js'
import { isRequest, parseClientPost, type ClientPost, type JsonRpcRequest } from '../mcp/json-rpc.js'
import { classifyPost, namesModernVersion } from '../mcp/modern-request.js'
import { BATCH_PROTOCOL_VERSIONS, DEFAULT_LEGACY_PROTOCOL_VERSION, isSupportedLegacyVersion, LEGACY_PROTOCOL_VERSIONS } from '../mcp/protocol-versions.js'
import { enforceOriginPolicy, type OriginPolicy } from '../security/origin-guard.js'
import type { PrincipalResolver } from '../security/principal.js'
import { isWellFormedSessionId, mintSessionId } from '../sessions/session-id.js'
import type { LiveSession, SessionStore } from '../sessions/session-store.js'
import { sendGatewayError } from './send-gateway-error.js'
import { upstreamFailure } from './upstream-error.js'

/*
 * One MCP endpoint (`routes[i]`): the session rules of the legacy Streamable HTTP transport answered
 * at the edge, everything else forwarded to a stateless upstream. Registered once per route in its
 * own encapsulated context, so each route has its own body parser and its own undici pool.
 */

export interface McpRouteOptions {
  readonly route: RouteConfig
  readonly store: SessionStore
  readonly maxBodyBytes: number
  readonly originPolicy: OriginPolicy
  /** null: sessions are not bound to an identity. */
  readonly principalResolver: PrincipalResolver | null
  /** initialize requests per minute per principal (or client address); 0: unlimited. */
  readonly initializePerMinute: number
  readonly metrics: GatewayMetrics
  readonly tracing: Tracing
}

const RATE_LIMIT_WINDOW_MS = 60_000

const SESSION_HEADER = 'mcp-session-id'

interface UpstreamResponse {
  readonly statusCode: number
  readonly headers: IncomingHttpHeaders
  readonly stream: Readable
}

/**
 * Headers on their way up. The client's session id is ours; the stateless upstream never sees it
 * (issue #2, rule 5); on a modern request it means nothing and is dropped the same way (2026-07-28:
 * "ignore it"). The request id and, with tracing, the trace context go along (issue #7).
 */
function upstreamRequestHeaders (request: Pick<FastifyRequest, 'id' | 'mcp'>, headers: IncomingHttpHeaders): IncomingHttpHeaders {
  delete headers[SESSION_HEADER]
  headers['x-request-id'] = request.id
  const span = request.mcp.span
  if (span !== undefined) Object.assign(headers, span.propagationHeaders())
  return headers
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) describe the upstream connection, not this one. */
const hopByHopHeaders = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']

/**
 * Upstream headers on their way back. A session id set by the upstream itself would contradict ours:
 * drop it. SSE must never be buffered by a proxy in front of us (SPEC-NOTES, "Headers").
 */
function rewriteUpstreamHeaders (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  delete headers[SESSION_HEADER]
  for (const name of hopByHopHeaders) delete headers[name]
  if (mediaType(headers['content-type']) === 'text/event-stream') headers['x-accel-buffering'] = 'no'
  return headers
}

/** What the bridge sets itself on a modern request, or what describes the client's own connection or body. */
const notBridgedHeaders = [...hopByHopHeaders, 'host', 'content-length', 'content-type', 'accept', 'accept-encoding',
  'mcp-protocol-version', 'mcp-method', 'mcp-name', 'last-event-id']

/** The client's headers (authorization, say) for a request the bridge makes on its behalf. */
function bridgedRequestHeaders (request: Pick<FastifyRequest, 'id' | 'mcp' | 'headers'>): Record<string, string> {
  const headers = upstreamRequestHeaders(request, { ...request.headers })
  for (const name of notBridgedHeaders) delete headers[name]
  const flat: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return flat
}

/** The levels `logging/setLevel` accepts (the RFC 5424 severities, as MCP lists them). */
const logLevels = new Set(['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'])

/** Aborts when the client goes away before its response was completely sent. */
function clientGoneSignal (reply: FastifyReply): AbortSignal {
  const gone = new AbortController()
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) gone.abort() })
  return gone.signal
}

function readSessionHeader (request: FastifyRequest): string | undefined {
  const value = request.headers[SESSION_HEADER]
  // Node joins repeated headers with ", "; such a value is not one of our ids and fails the shape check.
  return typeof value === 'string' ? value : undefined
}

/**
 * MCP-Protocol-Version on a legacy session request (2025-06-18 transports): missing means
 * 2025-03-26; anything we do not know, or that is not a version at all, is a 400.
 */
function checkLegacyVersionHeader (request: FastifyRequest): void {
  const version = request.headers['mcp-protocol-version'] ?? DEFAULT_LEGACY_PROTOCOL_VERSION
  if (typeof version !== 'string' || !isSupportedLegacyVersion(version)) {
    throw new GatewayError('MCPGW_PROTOCOL_VERSION_UNSUPPORTED', {
      detail: `${JSON.stringify(version)} (supported: ${LEGACY_PROTOCOL_VERSIONS.join(', ')})`
    })
  }
}

/** 2025-03-26 allowed batches; 2025-06-18 removed them. The session's negotiated version decides. */
function checkBatchAllowed (post: ClientPost, session: LiveSession): void {
  if (post.isBatch && !BATCH_PROTOCOL_VERSIONS.includes(session.protocolVersion)) {
    throw new GatewayError('MCPGW_BATCH_NOT_SUPPORTED', { detail: `this session negotiated ${session.protocolVersion}` })
  }
}

const postOnly = { allow: 'POST' }

export async function mcpRoute (fastify: FastifyInstance, options: McpRouteOptions): Promise<void> {
  const { route, store, metrics, tracing } = options
  // Label children resolved once per route: the request path then never hashes label objects.
  const routeMetrics = {
    upstreamDuration: metrics.upstreamDuration.labels({ route: route.path }),
    sessionsCreated: metrics.sessionsCreated.labels({ route: route.path })
  }
  const upstream = new URL(route.upstream)
  const upstreamSource = upstream.pathname + upstream.search
  const bridge = new ModernUpstreamBridge(route)
  const relay = new BridgeRelay(store)
  fastify.addHook('onClose', async function closeBridgeRelay () { relay.close() })

  await fastify.register(replyFrom, {
    base: upstream.origin,
    disableRequestLogging: true,
    // headersTimeout bounds the wait for an answer (504); an SSE body may then stream indefinitely.
    undici: { headersTimeout: route.timeout, bodyTimeout: 0 }
  })

  // The body is kept as the client's bytes: it is inspected here but forwarded unchanged.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: options.maxBodyBytes }, function keepRawBody (_request, body, done) {
    done(null, body)
  })

  if (tracing.enabled) {
    fastify.addHook('onRequest', async function startTraceSpan (request) {
      request.mcp.span = tracing.startRequestSpan(request.method, route.path, request.headers)
    })
    fastify.addHook('onResponse', async function endTraceSpan (request, reply) {
      const span = request.mcp.span
      if (span === undefined) return
      if (request.mcp.rpcMethod !== undefined) span.setAttribute('mcp.method', request.mcp.rpcMethod)
      span.setAttribute('mcp.era', request.mcp.era)
      if (request.mcp.outcome !== undefined) span.setAttribute('mcp.session.outcome', request.mcp.outcome)
      if (request.mcp.errorCode !== undefined) span.setAttribute('mcp.gateway.error', request.mcp.errorCode)
      span.end(reply.statusCode)
    })
  }

  fastify.addHook('onRequest', async function checkOriginAndHost (request) {
    enforceOriginPolicy(request.headers, options.originPolicy)
  })

  const resolvePrincipal = options.principalResolver
  if (resolvePrincipal !== null) {
    // Before the body is read: with a JWT binding an unauthenticated request costs no parsing.
    fastify.addHook('onRequest', async function identifyCaller (request) {
      request.mcp.principal = await resolvePrincipal(request.headers)
    })
  }

  /** limits.initializePerMinute, counted in the store so that every replica shares the count. */
  async function enforceInitializeRate (request: FastifyRequest): Promise<void> {
    if (options.initializePerMinute === 0) return
    const key = request.mcp.principal ?? `address:${request.ip}`
    const { allowed, resetInMs } = await store.consumeRateLimit(`initialize:${key}`, options.initializePerMinute, RATE_LIMIT_WINDOW_MS)
    if (!allowed) throw new GatewayError('MCPGW_RATE_LIMITED', { headers: { 'retry-after': String(Math.max(1, Math.ceil(resetInMs / 1000))) } })
  }

  /**
   * 400 without an id, 404 for an id that is not live on this route; slides the idle timeout. Then
   * the protocol version header: the session check always comes first.
   */
  async function requireLiveSession (request: FastifyRequest, withClient = false): Promise<LiveSession> {
    const sessionId = readSessionHeader(request)
    if (sessionId === undefined) throw new GatewayError('MCPGW_SESSION_ID_REQUIRED')
    request.mcp.sessionId = sessionId
    const session = isWellFormedSessionId(sessionId) ? await store.touch(sessionId, request.mcp.principal, withClient ? { withClient } : undefined) : null
    if (session === null || session.route !== route.path) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
    checkLegacyVersionHeader(request)
    return session
  }

  /** GET and DELETE are legacy-era operations: with a modern version and no session, 405. */
  function refuseModernSessionlessCall (request: FastifyRequest): void {
    if (namesModernVersion(request.headers) && readSessionHeader(request) === undefined) {
      throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: postOnly })
    }
  }

  function countUpstreamFailure (failure: GatewayError): void {
    metrics.upstreamErrors.inc({ route: route.path, kind: failure.code === 'MCPGW_UPSTREAM_TIMEOUT' ? 'timeout' : 'unreachable' })
  }

  /** Bridged requests (and their retries) count in the same upstream metrics as forwarded ones. */
  const observeBridgedUpstream = {
    upstreamResponded: (seconds: number) => { routeMetrics.upstreamDuration.observe(seconds) },
    upstreamFailed: countUpstreamFailure
  }

  function forward (request: FastifyRequest, reply: FastifyReply, onResponse?: (response: UpstreamResponse) => void): FastifyReply {
    const body = request.body as Buffer | undefined
    const started = performance.now()
    const upstreamDuration = routeMetrics.upstreamDuration
    return reply.from(upstreamSource, {
      ...(body === undefined ? {} : { body, contentType: request.headers['content-type'] ?? 'application/json' }),
      rewriteRequestHeaders: upstreamRequestHeaders,
      rewriteHeaders: rewriteUpstreamHeaders,
      onResponse: (_request, _reply, response) => {
        const seconds = (performance.now() - started) / 1000
        upstreamDuration.observe(seconds)
        request.mcp.span?.setAttribute('mcp.upstream.duration_ms', Math.round(seconds * 100_000) / 100)
        if (onResponse === undefined) reply.send(response.stream)
        else onResponse(response as unknown as UpstreamResponse)
      },
      onError: (_reply, { error }) => {
        const failure = upstreamFailure(error)
        countUpstreamFailure(failure)
        sendGatewayError(reply, failure)
      }
    })
  }

  /**
   * Forwards an initialize and mints a session only if the upstream answered it with a result
   * (SPEC-NOTES, legacy rule 1); anything else goes back to the client unchanged.
   */
  function forwardInitialize (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): FastifyReply {
    return forward(request, reply, (response) => {
      if (response.statusCode < 200 || response.statusCode > 299) {
        reply.send(response.stream)
        return
      }
      mintFromResponse(request, reply, initialize, response).catch((error: unknown) => {
        response.stream.destroy()
        // reply-from already copied the upstream's headers (content-type, length): they describe a
        // body that is no longer sent.
        for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
        sendGatewayError(reply, error instanceof GatewayError ? error : upstreamFailure(error))
      })
    })
  }

  /** Stores a new session for this initialize and marks the reply with its id. */
  async function createSession (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest, protocolVersion: string): Promise<void> {
    const params = (initialize.params ?? {}) as Record<string, unknown>
    const sessionId = mintSessionId()
    await store.create(sessionId, {
      route: route.path,
      protocolVersion,
      clientInfo: params.clientInfo ?? null,
      clientCapabilities: params.capabilities ?? null,
      principal: request.mcp.principal
    })
    request.mcp.sessionId = sessionId
    request.mcp.outcome = 'session created'
    routeMetrics.sessionsCreated.inc()
    reply.header(SESSION_HEADER, sessionId)
  }

  async function mintFromResponse (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest, response: UpstreamResponse): Promise<void> {
    const inspected = await inspectInitializeResponse(response.stream, response.headers['content-type'], initialize.id)
    if (!inspected.outcome.minted) {
      request.mcp.outcome = `not minted: ${inspected.outcome.reason}`
      reply.send(inspected.body)
      return
    }
    try {
      await createSession(request, reply, initialize, inspected.outcome.protocolVersion)
    } catch (error) {
      inspected.body.destroy()
      throw error
    }
    reply.send(inspected.body)
  }

  /**
   * Issue #6: a legacy client in front of a 2026-07-28 upstream. initialize is answered here from
   * `server/discover`; later requests are rewritten as modern ones, with the client's identity from
   * the session. What the modern era no longer has (ping, logging/setLevel, the client's own
   * notifications and responses) is answered at the edge.
   */
  async function answerInitializeFromDiscover (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply> {
    const result = await bridge.initializeResult(initialize, bridgedRequestHeaders(request))
    await createSession(request, reply, initialize, result.protocolVersion as string)
    request.mcp.outcome = 'session created (bridged)'
    return await reply.type('application/json').send({ jsonrpc: '2.0', id: initialize.id, result })
  }

  function identityOf (session: LiveSession): ClientIdentity {
    return { clientInfo: session.clientInfo, clientCapabilities: session.clientCapabilities, logLevel: session.bridge?.logLevel }
  }

  function jsonResult (reply: FastifyReply, id: JsonRpcRequest['id'], body: { result: unknown } | { error: { code: number, message: string } }): FastifyReply {
    return reply.type('application/json').send({ jsonrpc: '2.0', id, ...body })
  }

  /** What the client POSTs that is not a request: answers to the bridge's input requests, cancellations. */
  async function bridgeClientMessage (message: ClientPost['messages'][number], session: LiveSession): Promise<void> {
    if (!('method' in message)) {
      await relay.deliverAnswer(session.id, message)
      return
    }
    const params = message.params as { requestId?: unknown } | undefined
    const requestId = params?.requestId
    if (message.method === 'notifications/cancelled' && (typeof requestId === 'string' || typeof requestId === 'number')) {
      await relay.cancel(session.id, requestId)
    }
    // Other client notifications (initialized, roots/list_changed, progress) have no modern counterpart.
  }

  /** logging/setLevel and resources/(un)subscribe: answered here, kept in the session for the upstream. */
  async function bridgeSessionSetting (request: FastifyRequest, reply: FastifyReply, message: JsonRpcRequest, session: LiveSession): Promise<FastifyReply> {
    const params = (message.params ?? {}) as Record<string, unknown>
    const value = message.method === 'logging/setLevel' ? params.level : params.uri
    const valid = typeof value === 'string' && (message.method !== 'logging/setLevel' || logLevels.has(value))
    if (!valid) return jsonResult(reply, message.id, { error: { code: JsonRpcErrorCode.InvalidParams, message: `Invalid params: ${message.method === 'logging/setLevel' ? 'level must be one of ' + [...logLevels].join(', ') : 'uri must be a string'}` } })
    const change = message.method === 'logging/setLevel' ? { logLevel: value } : message.method === 'resources/subscribe' ? { subscribe: value } : { unsubscribe: value }
    if (!await store.updateBridgeState(session.id, request.mcp.principal, change)) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
    if (!('logLevel' in change)) await relay.sessionChanged(session.id)
    return jsonResult(reply, message.id, { result: {} })
  }

  async function bridgeRequest (request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession): Promise<FastifyReply> {
    if (post.isBatch) throw new GatewayError('MCPGW_BATCH_NOT_SUPPORTED', { detail: 'batches are not bridged to a 2026-07-28 upstream' })
    const message = post.messages[0] as ClientPost['messages'][number]
    if (!isRequest(message)) {
      await bridgeClientMessage(message, session)
      return await reply.code(202).send()
    }
    if (message.method === 'ping') return jsonResult(reply, message.id, { result: {} })
    if (message.method === 'logging/setLevel' || message.method === 'resources/subscribe' || message.method === 'resources/unsubscribe') {
      return await bridgeSessionSetting(request, reply, message, session)
    }
    request.mcp.outcome = 'bridged to 2026-07-28'
    await runBridgedCall(message, { id: session.id, identity: identityOf(session) }, new LegacyReply(reply), clientGoneSignal(reply), {
      upstream: route.upstream,
      headers: bridgedRequestHeaders(request),
      timeout: route.timeout,
      inputTimeout: route.inputTimeout,
      maxInputRounds: route.maxInputRounds,
      relay,
      observe: observeBridgedUpstream
    })
    return reply
  }

  /** A legacy GET stream on a bridged session: the upstream's `subscriptions/listen` stream. */
  async function bridgeGetStream (request: FastifyRequest, reply: FastifyReply, session: LiveSession): Promise<FastifyReply> {
    request.mcp.outcome = 'bridged to subscriptions/listen'
    await serveListenStream(session.id, new LegacyReply(reply), clientGoneSignal(reply), {
      upstream: route.upstream,
      headers: bridgedRequestHeaders(request),
      timeout: route.timeout,
      relay,
      readSession: async () => {
        // Read again on every change of the filter (a subscribe or unsubscribe: the client's activity anyway).
        const live = await store.touch(session.id, request.mcp.principal, { withClient: true })
        return live === null ? null : { identity: identityOf(live), bridge: live.bridge ?? { resourceSubscriptions: [] } }
      }
    })
    return reply
  }

  fastify.post(route.path, async function handlePost (request, reply) {
    const post = parseClientPost((request.body as Buffer | undefined) ?? '')
    request.mcp.rpcMethod = post.rpcMethod
    request.mcp.rpcId = post.id
    // SPEC-NOTES legacy rule 7: initialize is never part of a batch.
    if (post.containsInitialize && post.isBatch) throw new GatewayError('MCPGW_INITIALIZE_IN_BATCH')
    const era = classifyPost(post, request.headers)
    if (era.era === 'modern') {
      // Stateless by definition: no session checked or minted; any Mcp-Session-Id is ignored.
      request.mcp.era = 'modern'
      return forward(request, reply)
    }
    if (post.initialize !== undefined) {
      // An initialize never revives or reuses an id: a live one is "already initialized" (400),
      // anything else is a session that does not exist (404).
      if (readSessionHeader(request) !== undefined) {
        await requireLiveSession(request)
        throw new GatewayError('MCPGW_ALREADY_INITIALIZED')
      }
      await enforceInitializeRate(request)
      if ((bridge.knownEra() ?? await bridge.era()) === 'modern') return await answerInitializeFromDiscover(request, reply, post.initialize)
      return forwardInitialize(request, reply, post.initialize)
    }
    // The session check comes first: a request refused at the edge never causes upstream traffic,
    // not even the one-time era probe.
    const knownEra = bridge.knownEra()
    let session = await requireLiveSession(request, knownEra === 'modern')
    checkBatchAllowed(post, session)
    if ((knownEra ?? await bridge.era()) === 'modern') {
      // Only on the first requests after a restart, before the probe: read the client's identity too.
      if (knownEra === undefined) session = await requireLiveSession(request, true)
      return await bridgeRequest(request, reply, post, session)
    }
    return forward(request, reply)
  })

  // A legacy GET opens the standalone SSE stream. A stateless upstream has nothing to push on it,
  // so the gateway answers 405 itself unless the route says to forward it.
  fastify.get(route.path, async function handleGet (request, reply) {
    refuseModernSessionlessCall(request)
    const knownEra = bridge.knownEra()
    const session = await requireLiveSession(request, knownEra === 'modern')
    if (route.getStream !== 'forward') throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: { allow: 'POST, DELETE' } })
    if ((knownEra ?? await bridge.era()) === 'modern') {
      return await bridgeGetStream(request, reply, knownEra === undefined ? await requireLiveSession(request, true) : session)
    }
    return forward(request, reply)
  })

  // DELETE ends the session at the edge; a stateless upstream has nothing to end (issue #2, rule 3).
  fastify.delete(route.path, async function handleDelete (request, reply) {
    refuseModernSessionlessCall(request)
    const sessionId = readSessionHeader(request)
    if (sessionId === undefined) throw new GatewayError('MCPGW_SESSION_ID_REQUIRED')
    request.mcp.sessionId = sessionId
    if (!isWellFormedSessionId(sessionId)) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
    // Checked before terminating: a request the gateway refuses must not end the session.
    checkLegacyVersionHeader(request)
    if (!await store.terminate(sessionId, { route: route.path, principal: request.mcp.principal })) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
    request.mcp.outcome = 'session terminated'
    metrics.sessionsTerminated.inc({ reason: 'delete' })
    // A bridged GET stream of this session, on whichever instance, ends with it.
    if (bridge.knownEra() === 'modern') await relay.sessionChanged(sessionId).catch(() => undefined)
    return reply.code(204).send()
  })

  fastify.route({
    method: ['PUT', 'PATCH', 'HEAD'],
    url: route.path,
    handler: async function handleOtherMethod () {
      throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: { allow: 'GET, POST, DELETE' } })
    }
  })
}
