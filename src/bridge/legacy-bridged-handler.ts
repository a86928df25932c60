import type { FastifyReply, FastifyRequest } from 'fastify'
import { GatewayError, JsonRpcErrorCode } from '../errors.js'
import { isRequest, type ClientPost, type JsonRpcRequest } from '../mcp/json-rpc.js'
import type { LegacyHandler } from '../proxy/legacy-handler.js'
import type { RouteContext } from '../proxy/route-context.js'
import { initializeDeadline } from '../proxy/initialize-deadline.js'
import { mintSession } from '../proxy/session-minting.js'
import { guardSessionStream } from '../proxy/session-stream-guard.js'
import { recordedStream } from '../proxy/session-streams.js'
import type { SseResponse } from '../streams/sse-response.js'
import type { ReplicaRelay } from '../sessions/replica-relay.js'
import type { LiveSession } from '../sessions/session-store.js'
import { isSessionSetting, settingChange } from '../mcp/session-settings.js'
import { upstreamFailure } from '../upstream/upstream-failure.js'
import { bridgedRequestHeaders } from '../upstream/upstream-headers.js'
import { runBridgedCall } from './bridged-call.js'
import { LegacyReply } from './legacy-reply.js'
import { serveListenStream } from './listen-stream.js'
import type { ClientIdentity } from './modern-envelope.js'
import { discoverServer, initializeResultFrom, type DiscoverResult } from './server-discover.js'

/*
 * Legacy requests to a 2026-07-28 upstream (docs/era-bridge.md): initialize is answered here from
 * the upstream's `server/discover`; every later POST and the GET stream of the session are bridged.
 * What the modern era has no counterpart for is answered here and, where the upstream needs it
 * later, kept in the session; the rest runs through bridged-call.ts (requests) and listen-stream.ts
 * (the GET stream).
 */

function identityOf (session: LiveSession): ClientIdentity {
  return { clientInfo: session.clientInfo, clientCapabilities: session.clientCapabilities, logLevel: session.bridge?.logLevel }
}

function sendJsonRpc (reply: FastifyReply, id: JsonRpcRequest['id'], body: { result: unknown } | { error: { code: number, message: string } }): FastifyReply {
  return reply.type('application/json').send({ jsonrpc: '2.0', id, ...body })
}

export class LegacyBridgedHandler implements LegacyHandler {
  readonly #context: RouteContext
  readonly #relay: ReplicaRelay

  constructor (context: RouteContext) {
    this.#context = context
    this.#relay = context.relay
  }

  /** initialize, answered from the upstream's `server/discover`; the session is minted with the client's identity. */
  async initialize (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply> {
    const { route, upstream, observeUpstream } = this.#context
    const params = (initialize.params ?? {}) as Record<string, unknown>
    const identity = { clientInfo: params.clientInfo, clientCapabilities: params.capabilities }
    const deadline = initializeDeadline(reply, route.initializeTimeout)
    let discovered: DiscoverResult | undefined
    try {
      discovered = await discoverServer(upstream, identity, bridgedRequestHeaders(request), deadline.signal)
    } catch (error) {
      if (deadline.clientGone()) {
        request.mcp.outcome = 'client left before the initialize answer'
        return reply
      }
      const failure = upstreamFailure(deadline.signal.aborted ? deadline.signal.reason : error)
      observeUpstream.upstreamFailed(failure)
      throw failure
    } finally {
      deadline.release()
    }
    const result = initializeResultFrom(discovered, initialize, route)
    await mintSession(this.#context, request, reply, initialize, result.protocolVersion as string)
    request.mcp.outcome = 'session created (bridged)'
    return await reply.type('application/json').send({ jsonrpc: '2.0', id: initialize.id, result })
  }

  /** A POST on a live session. */
  async post (request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession): Promise<FastifyReply> {
    if (post.isBatch) throw new GatewayError('MCPGW_BATCH_NOT_SUPPORTED', { detail: 'batches are not bridged to a 2026-07-28 upstream' })
    const message = post.messages[0] as ClientPost['messages'][number]
    if (!isRequest(message)) {
      await this.#clientMessage(message, session)
      return await reply.code(202).send()
    }
    if (message.method === 'ping') return sendJsonRpc(reply, message.id, { result: {} })
    if (isSessionSetting(message.method)) return await this.#setting(request, reply, message, session)
    request.mcp.outcome = 'bridged to 2026-07-28'
    const { route, upstream, observeUpstream } = this.#context
    // Closing the upstream request is the modern era's cancellation: nothing more to tell it.
    const legacyReply = new LegacyReply(reply, () => recordedStream(this.#context, request, reply, session, 'response', undefined, { ids: [message.id] }))
    this.#context.checkpoint('bridged post: reply made')
    await runBridgedCall(message, { id: session.id, identity: identityOf(session) }, legacyReply, legacyReply.stopped, {
      upstream,
      headers: bridgedRequestHeaders(request),
      inputTimeout: route.inputTimeout,
      maxInputRounds: route.maxInputRounds,
      relay: this.#relay,
      resourceMetadataUrl: () => this.#context.resourceMetadataUrl(request),
      passCookies: route.passCookies,
      observe: observeUpstream
    })
    return reply
  }

  /**
   * The legacy GET stream of a live session: the upstream's `subscriptions/listen` stream, as the
   * session's standalone stream (one per session; a client that left may resume it: docs/streams.md).
   * `client`: the response a resume already opened.
   */
  async getStream (request: FastifyRequest, reply: FastifyReply, session: LiveSession, client?: SseResponse): Promise<FastifyReply> {
    request.mcp.outcome = 'bridged to subscriptions/listen'
    const { store, sessionTimeouts } = this.#context
    // Given back whatever fails (docs/architecture.md, "Resources"): the stream ends, the guard goes.
    using taken = new DisposableStack()
    // Ends with the session whatever ends it, and at its lifetime; slides its idle timeout while open.
    const guard = taken.adopt(guardSessionStream({ store, relay: this.#relay, session, principal: request.mcp.principal, ...sessionTimeouts, log: request.log }), (held) => { held.release() })
    if (client !== undefined) taken.defer(() => { client.end() })
    const legacyReply = taken.adopt(new LegacyReply(reply, () => recordedStream(this.#context, request, reply, session, 'standalone', client)), (opened) => { if (opened.started) opened.end() })
    // Opened before the first await: the client sees its stream at once, as with a legacy server.
    legacyReply.open()
    this.#context.checkpoint('bridged get: stream opened')
    await this.#listen(request, legacyReply, session, AbortSignal.any([legacyReply.stopped, guard.ended]))
    return reply
  }

  async #listen (request: FastifyRequest, legacyReply: LegacyReply, session: LiveSession, ended: AbortSignal): Promise<void> {
    await serveListenStream(session.id, legacyReply, ended, {
      upstream: this.#context.upstream,
      headers: bridgedRequestHeaders(request),
      relay: this.#relay,
      onListenEnded: (error) => { request.log.debug({ err: error }, 'listen request ended') },
      readSession: async () => {
        // Read again on every change of the filter (a subscribe or unsubscribe: the client's activity anyway).
        const live = await this.#context.store.touch(session.id, request.mcp.principal, { withClient: true })
        return live === null ? null : { identity: identityOf(live), bridge: live.bridge ?? { resourceSubscriptions: [] } }
      }
    })
  }

  /** What the client POSTs that is not a request: answers to the bridge's input requests, cancellations. */
  async #clientMessage (message: ClientPost['messages'][number], session: LiveSession): Promise<void> {
    if (!('method' in message)) {
      await this.#relay.deliverAnswer(session.id, message)
      return
    }
    const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId
    if (message.method === 'notifications/cancelled' && (typeof requestId === 'string' || typeof requestId === 'number')) {
      await this.#relay.cancel(session.id, requestId)
    }
    // Other client notifications (initialized, roots/list_changed, progress) have no modern counterpart.
  }

  /** logging/setLevel and resources/(un)subscribe: answered here, kept in the session for the upstream. */
  async #setting (request: FastifyRequest, reply: FastifyReply, message: JsonRpcRequest, session: LiveSession): Promise<FastifyReply> {
    const change = settingChange(message, session.bridge?.resourceSubscriptions ?? [], this.#context.limits.maxSubscriptionsPerSession)
    if (typeof change === 'string') return sendJsonRpc(reply, message.id, { error: { code: JsonRpcErrorCode.InvalidParams, message: `Invalid params: ${change}` } })
    if (!await this.#context.store.updateBridgeState(session.id, request.mcp.principal, change)) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
    if (!('logLevel' in change)) await this.#relay.sessionChanged(session.id)
    return sendJsonRpc(reply, message.id, { result: {} })
  }
}
