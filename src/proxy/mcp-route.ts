import replyFrom from '@fastify/reply-from'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import { LegacySessionBridge } from '../bridge/legacy-session-bridge.js'
import { ModernUpstreamBridge } from '../bridge/modern-upstream-bridge.js'
import type { RouteConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import type { GatewayMetrics } from '../observability/metrics.js'
import type { Tracing } from '../observability/tracing.js'
import { inspectInitializeResponse } from '../mcp/initialize-response.js'
import { parseClientPost, type ClientPost, type JsonRpcRequest } from '../mcp/json-rpc.js'
import { classifyPost, namesModernVersion } from '../mcp/modern-request.js'
import { BATCH_PROTOCOL_VERSIONS, DEFAULT_LEGACY_PROTOCOL_VERSION, isSupportedLegacyVersion, LEGACY_PROTOCOL_VERSIONS } from '../mcp/protocol-versions.js'
import { enforceOriginPolicy, type OriginPolicy } from '../security/origin-guard.js'
import type { PrincipalResolver } from '../security/principal.js'
import { isWellFormedSessionId, mintSessionId } from '../sessions/session-id.js'
import type { LiveSession, SessionStore } from '../sessions/session-store.js'
import { sendGatewayError } from './send-gateway-error.js'
import { upstreamFailure } from './upstream-error.js'
import { bridgedRequestHeaders, rewriteUpstreamHeaders, SESSION_HEADER, upstreamRequestHeaders } from './upstream-headers.js'

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

interface UpstreamResponse {
  readonly statusCode: number
  readonly headers: IncomingHttpHeaders
  readonly stream: Readable
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

  const upstreamFailureKinds: Partial<Record<GatewayError['code'], string>> = {
    MCPGW_UPSTREAM_TIMEOUT: 'timeout',
    MCPGW_UPSTREAM_INVALID_RESPONSE: 'invalid'
  }

  function countUpstreamFailure (failure: GatewayError): void {
    metrics.upstreamErrors.inc({ route: route.path, kind: upstreamFailureKinds[failure.code] ?? 'unreachable' })
  }

  const sessionBridge = new LegacySessionBridge({
    route,
    store,
    // Bridged requests (and their retries) count in the same upstream metrics as forwarded ones.
    observe: {
      upstreamResponded: (seconds) => { routeMetrics.upstreamDuration.observe(seconds) },
      upstreamFailed: countUpstreamFailure
    }
  })
  fastify.addHook('onClose', async function closeSessionBridge () { sessionBridge.close() })

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
   * `server/discover`; everything later on the session goes to the LegacySessionBridge.
   */
  async function answerInitializeFromDiscover (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply> {
    const result = await bridge.initializeResult(initialize, bridgedRequestHeaders(request))
    await createSession(request, reply, initialize, result.protocolVersion as string)
    request.mcp.outcome = 'session created (bridged)'
    return await reply.type('application/json').send({ jsonrpc: '2.0', id: initialize.id, result })
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
      return await sessionBridge.post(request, reply, post, session)
    }
    return forward(request, reply)
  })

  // A legacy GET opens the standalone SSE stream. A stateless upstream has nothing to push on it,
  // so the gateway answers 405 itself unless the route says to forward it.
  fastify.get(route.path, async function handleGet (request, reply) {
    refuseModernSessionlessCall(request)
    const knownEra = bridge.knownEra()
    const forwarded = route.getStream === 'forward'
    const session = await requireLiveSession(request, forwarded && knownEra === 'modern')
    if (!forwarded) throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: { allow: 'POST, DELETE' } })
    if ((knownEra ?? await bridge.era()) === 'modern') {
      return await sessionBridge.getStream(request, reply, knownEra === undefined ? await requireLiveSession(request, true) : session)
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
    if (bridge.knownEra() === 'modern') await sessionBridge.sessionEnded(sessionId)
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
