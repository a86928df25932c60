import type { FastifyRequest } from 'fastify'
import { GatewayError } from '../errors.js'
import type { ClientPost, JsonRpcRequest } from '../mcp/json-rpc.js'
import { classifyPost } from '../mcp/modern-request.js'
import { LEGACY_PROTOCOL_VERSIONS } from '../mcp/protocol-versions.js'
import { isSessionSetting } from '../mcp/session-settings.js'
import type { LiveSession } from '../sessions/session-store.js'
import { parseEventId, type ParsedEventId } from '../streams/event-id.js'
import type { KnownEra, UpstreamEraProbe } from '../upstream/upstream-era.js'
import type { RouteContext } from './route-context.js'
import { checkBatchAllowed, checkClientStateSize, enforceInitializeRate, readSessionHeader, refuseModernSessionlessCall, requireLiveSession } from './session-checks.js'

/*
 * Where a request goes, decided once (docs/architecture.md, "The request path"). The request's own
 * era first: a 2026-07-28 POST passes through. A legacy request is checked at the edge (session,
 * version header, limits) and then goes to the forwarded or the bridged handler by the era of the
 * route's upstream (a stateful upstream, `upstreamSessions`, is legacy: never probed). The session
 * check comes first: a request refused at the edge never causes upstream traffic, not even the
 * one-time era probe of an `auto` route.
 */

/** Which legacy handler serves a request: by the era the route's upstream speaks. */
export type LegacyPath = 'forwarded' | 'bridged'

export type PostDecision =
  | { readonly kind: 'modern' }
  | { readonly kind: 'initialize', readonly path: LegacyPath, readonly initialize: JsonRpcRequest }
  | { readonly kind: 'session', readonly path: LegacyPath, readonly session: LiveSession }

export interface StreamDecision {
  readonly path: LegacyPath
  readonly session: LiveSession
  /** A `Last-Event-ID` naming one of the gateway's streams (only when streams are resumable). */
  readonly lastEventId: ParsedEventId | undefined
  /** Whether the route serves standalone GET streams (`getStream: forward`). */
  readonly standalone: boolean
}

/** The client's credentials go along on the era probe: an upstream that requires auth can answer it. */
function probeHeaders (request: FastifyRequest): Record<string, string> {
  const authorization = request.headers.authorization
  return typeof authorization === 'string' ? { authorization } : {}
}

function pathFor (era: KnownEra): LegacyPath {
  return era === 'modern' ? 'bridged' : 'forwarded'
}

export class RequestDecision {
  readonly #context: RouteContext
  readonly #probe: UpstreamEraProbe
  constructor (context: RouteContext, probe: UpstreamEraProbe) {
    this.#context = context
    this.#probe = probe
  }

  async post (request: FastifyRequest, post: ClientPost): Promise<PostDecision> {
    // initialize is never part of a batch (MCP 2025-03-26, Basic › Lifecycle).
    if (post.containsInitialize && post.isBatch) throw new GatewayError('MCPGW_INITIALIZE_IN_BATCH')
    if (classifyPost(post, request.headers).era === 'modern') {
      // A route that says its upstream is legacy has no stateless path: such a request would skip
      // the session rules and the per-principal limits.
      if (this.#context.route.upstreamEra === 'legacy') {
        throw new GatewayError('MCPGW_LEGACY_ROUTE', { data: { supported: LEGACY_PROTOCOL_VERSIONS, requested: request.headers['mcp-protocol-version'] ?? null } })
      }
      return { kind: 'modern' }
    }
    if (post.initialize !== undefined) {
      // An initialize never revives or reuses an id: a live one is "already initialized" (400),
      // anything else is a session that does not exist (404).
      if (readSessionHeader(request) !== undefined) {
        await this.#liveSession(request, false)
        throw new GatewayError('MCPGW_ALREADY_INITIALIZED')
      }
      checkClientStateSize(post.initialize, this.#context.limits.maxClientStateBytes)
      await enforceInitializeRate(this.#context.store, this.#context.limits.initializePerMinute, request)
      const path = this.#context.route.upstreamSessions ? 'forwarded' : pathFor(await this.#probe.era(probeHeaders(request)))
      return { kind: 'initialize', path, initialize: post.initialize }
    }
    if (this.#context.route.upstreamSessions) {
      // A stateful upstream is legacy by definition: no probe. A setting is kept for a failover's replay.
      const session = await this.#liveSession(request, post.messages.some((message) => 'method' in message && isSessionSetting(message.method)))
      checkBatchAllowed(post, session)
      return { kind: 'session', path: 'forwarded', session }
    }
    const known = this.#probe.knownEra()
    // A bridged request needs the client's identity: read in the same round trip as the check.
    const session = await this.#liveSession(request, known !== 'legacy')
    checkBatchAllowed(post, session)
    return { kind: 'session', path: pathFor(known ?? await this.#probe.era(probeHeaders(request))), session }
  }

  /**
   * A legacy GET opens the standalone SSE stream, or resumes a stream with `Last-Event-ID`
   * (docs/streams.md). A stateless upstream has nothing to push on a standalone stream, so the
   * gateway answers 405 itself unless the route says to forward it (`getStream: forward`); resuming a
   * response stream needs no upstream GET and is served either way. The session check comes first.
   */
  async getStream (request: FastifyRequest): Promise<StreamDecision> {
    refuseModernSessionlessCall(request)
    const known = this.#context.route.upstreamSessions ? 'legacy' : this.#probe.knownEra()
    const standalone = this.#context.route.getStream === 'forward'
    const lastEventId = this.#context.streams.events === undefined ? undefined : parseEventId(request.headers['last-event-id'])
    if (lastEventId === undefined && this.#context.streams.events !== undefined && request.headers['last-event-id'] !== undefined) {
      request.log.info('Last-Event-ID is none of the gateway\'s event ids: served as a GET without it')
    }
    const session = await this.#liveSession(request, standalone && known !== 'legacy')
    if (!standalone && lastEventId?.kind !== 'response') throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: { allow: 'POST, DELETE' } })
    const path = known === undefined && !standalone ? 'forwarded' : pathFor(known ?? await this.#probe.era(probeHeaders(request)))
    return { path, session, lastEventId, standalone }
  }

  async #liveSession (request: FastifyRequest, withClient: boolean): Promise<LiveSession> {
    return await requireLiveSession(this.#context.store, this.#context.route.path, request, withClient)
  }
}
