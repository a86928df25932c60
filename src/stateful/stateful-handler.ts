import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError, jsonRpcErrorBody } from '../errors.js'
import { isRequest, type ClientPost, type JsonRpcRequest } from '../mcp/json-rpc.js'
import { isSessionSetting, settingChange } from '../mcp/session-settings.js'
import type { LegacyHandler } from '../proxy/legacy-handler.js'
import { forwardInitialize, LegacyForwardedHandler } from '../proxy/legacy-forwarded-handler.js'
import type { RouteContext } from '../proxy/route-context.js'
import { relayCancellations, relayResponseStream, relaysStreams } from '../proxy/session-streams.js'
import { NO_UPSTREAM_SESSION, type BridgeStateChange, type LiveSession, type UpstreamSessionRef } from '../sessions/session-store.js'
import type { SseResponse } from '../streams/sse-response.js'
import { isRelayableStream, recordUpstreamTiming } from '../upstream/forward-request.js'
import { isSuccessStatus, type UpstreamAnswer } from '../upstream/upstream-client.js'
import { upstreamFailure } from '../upstream/upstream-failure.js'
import { GAVE_UP, sendCancellation } from '../upstream/upstream-cancellation.js'
import { bridgedRequestHeaders, forwardedRequestHeaders, rewriteUpstreamHeaders, SESSION_HEADER } from '../upstream/upstream-headers.js'
import { mayRunTwice, neverReachedInstance } from './failover-rules.js'
import type { FailoverCause, StatefulFailover } from './stateful-failover.js'
import type { UpstreamInstance, UpstreamInstances } from './upstream-instances.js'
import type { UpstreamSessionEnding } from './upstream-session-ending.js'

/*
 * Legacy requests to a stateful upstream (docs/stateful-upstreams.md). initialize goes to the
 * instance the balance picks; its upstream session id is kept in the gateway session and never
 * shown to the client. Every later request goes to the session's instance with that id, from any
 * replica (read with the session check, in the same round trip). A lost upstream session is moved
 * (stateful-failover.ts) and the request sent again when that is safe (failover-rules.ts).
 */

/**
 * Attempts of one request: its instance, then at most two moves (a race lost, a second instance
 * gone). A 404 after a move ends the request at once (MCPGW_UPSTREAM_SESSION_LOST): one replay per
 * request at most, so that instances which forget sessions cost a fixed few upstream requests per
 * client request (docs/stateful-upstreams.md, "Failover").
 */
const MAX_ATTEMPTS = 3
/** An SDK server allows one GET stream per session: a 409 while the older one closes is waited out this often. */
const GET_CONFLICT_RETRIES = 10
const GET_CONFLICT_WAIT_MS = 100

export class StatefulHandler implements LegacyHandler {
  readonly #context: RouteContext
  readonly #instances: UpstreamInstances
  readonly #failover: StatefulFailover
  /** Ends the upstream sessions nobody will use (sent again while their instance is unreachable). */
  readonly #ends: UpstreamSessionEnding
  /** The standalone GET stream is relayed like a forwarded one, from the session's instance. */
  readonly #streams: LegacyForwardedHandler

  constructor (context: RouteContext, instances: UpstreamInstances, failover: StatefulFailover, ends: UpstreamSessionEnding) {
    this.#context = context
    this.#instances = instances
    this.#failover = failover
    this.#ends = ends
    this.#streams = new LegacyForwardedHandler(context, async (request, session, headers, signal) => await this.#openGetStream(request, session, headers, signal))
  }

  /**
   * initialize on the instance the balance picks (another one when it refuses the connection). A
   * result mints the gateway session with the upstream's session id inside it; the client's answer
   * carries the gateway's id only.
   */
  async initialize (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply> {
    return await forwardInitialize(this.#context, request, reply, initialize, async (signal) => {
      const tried = new Set<string>()
      for (;;) {
        const instance = await this.#instances.place(tried)
        // Nothing tried yet and nothing to place on: every instance is left out for forgetting sessions.
        if (instance === undefined) throw new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: tried.size > 0 ? 'no instance accepted the connection' : 'every instance forgets sessions and is left out for a while' })
        let answer: UpstreamAnswer
        try {
          answer = await instance.client.postBytes(forwardedRequestHeaders(request, instance.client.host), request.body as Buffer, signal)
        } catch (error) {
          if (signal.aborted || !neverReachedInstance(error)) throw error
          this.#instances.eject(instance, 'refused a connection')
          tried.add(instance.key)
          continue
        }
        const assigned = answer.headers[SESSION_HEADER]
        const upstream: UpstreamSessionRef = { instance: instance.key, sessionId: typeof assigned === 'string' ? assigned : '' }
        const discard = (): void => { this.#end(instance, upstream, request, 'initialize without a session') }
        return { answer, stateful: { data: { upstream }, discard } }
      }
    })
  }

  /**
   * A POST of a live session, to its instance with its upstream session id. A lost upstream session
   * is moved and the POST sent again when that is safe; otherwise the client gets
   * MCPGW_UPSTREAM_CALL_INTERRUPTED for it, in-band, and the session goes on.
   */
  async post (request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession): Promise<FastifyReply> {
    await relayCancellations(this.#context, request, post, session)
    try {
      return await this.#send(request, reply, post, session)
    } catch (error) {
      // Counted once per request, wherever the request gave up on the session (a GET stream's is counted by its relay).
      if (error instanceof GatewayError && error.code === 'MCPGW_UPSTREAM_SESSION_LOST') this.#context.observeUpstream.upstreamFailed(error)
      throw error
    }
  }

  async #send (request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession): Promise<FastifyReply> {
    const { observeUpstream } = this.#context
    const settings = this.#settingsOf(post, session)
    let target = session.upstream ?? NO_UPSTREAM_SESSION
    let moved = false
    for (let attempt = 1; ; attempt++) {
      const instance = this.#instances.byKey(target.instance)
      if (instance === undefined || this.#instances.shouldLeave(instance)) {
        target = await this.#move(request, session, target, instance === undefined ? 'not_found' : 'ejected', attempt)
        moved = true
        continue
      }
      const headers = forwardedRequestHeaders(request, instance.client.host)
      if (target.sessionId !== '') headers[SESSION_HEADER] = target.sessionId
      const started = performance.now()
      let answer: UpstreamAnswer
      // An instance that the health check gives up on while it has not answered is given up on here too.
      const waiting = new AbortController()
      const settled = this.#instances.whileInFlight(instance, () => { waiting.abort(new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: 'the instance failed its health check' })) })
      try {
        this.#context.checkpoint('stateful post: in flight')
        answer = await instance.client.postBytes(headers, request.body as Buffer, waiting.signal)
      } catch (error) {
        const failure = upstreamFailure(error)
        // A slow instance is not a lost one: its sessions stay.
        if (failure.code !== 'MCPGW_UPSTREAM_UNREACHABLE') {
          observeUpstream.upstreamFailed(failure)
          throw failure
        }
        // Counted as any upstream failure, whether or not the move then saves the request.
        observeUpstream.upstreamFailed(failure)
        const checkFailed = waiting.signal.aborted
        if (!checkFailed) this.#instances.eject(instance, 'refused or dropped a connection')
        target = await this.#move(request, session, target, checkFailed ? 'ejected' : 'unreachable', attempt)
        moved = true
        if (neverReachedInstance(error) || mayRunTwice(post, this.#context.route.retryToolCalls)) continue
        request.mcp.outcome = 'interrupted: moved to another upstream session, not sent again'
        return this.#interrupted(reply, post)
      } finally {
        settled()
      }
      recordUpstreamTiming(request, observeUpstream, started)
      // The answer's body is destroyed whatever fails before it is handed on (docs/architecture.md, "Resources").
      using body = new DisposableStack()
      body.defer(() => { answer.body.destroy() })
      this.#context.checkpoint('stateful post: answered')
      // 404 for the upstream session: the instance does not know it (any more); the request did not run.
      if (answer.statusCode === 404 && target.sessionId !== '') {
        body.dispose()
        if (moved) throw this.#sessionLost(instance)
        target = await this.#move(request, session, target, 'not_found', attempt)
        moved = true
        continue
      }
      if (target.sessionId !== '') this.#instances.keptSession(instance)
      if (isSuccessStatus(answer.statusCode)) {
        for (const change of settings) await this.#keepSetting(request, session, change)
      }
      const answered = this.#answer(request, reply, post, session, instance, answer, headers)
      // The reply or the relay has the body now.
      body.move()
      return answered
    }
  }

  async getStream (request: FastifyRequest, reply: FastifyReply, session: LiveSession, client?: SseResponse): Promise<FastifyReply> {
    return await this.#streams.getStream(request, reply, session, client)
  }

  /**
   * A 2026-07-28 request on this route: stateless, so any healthy instance serves it, and another
   * one when it never reached the first.
   */
  async modernPost (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    request.mcp.era = 'modern'
    // 2026-07-28 has no initialize: on a legacy instance it would open a session nobody keeps.
    if (request.mcp.rpcMethod === 'initialize') throw new GatewayError('MCPGW_INVALID_REQUEST', { detail: 'initialize is not a 2026-07-28 method' })
    const { observeUpstream } = this.#context
    for (let attempt = 1; ; attempt++) {
      const instance = this.#instances.any()
      const started = performance.now()
      let answer: UpstreamAnswer
      try {
        answer = await instance.client.postBytes(forwardedRequestHeaders(request, instance.client.host), request.body as Buffer)
      } catch (error) {
        const failure = upstreamFailure(error)
        if (failure.code === 'MCPGW_UPSTREAM_UNREACHABLE') this.#instances.eject(instance, 'refused or dropped a connection')
        if (neverReachedInstance(error) && attempt < this.#instances.all.length) continue
        observeUpstream.upstreamFailed(failure)
        throw failure
      }
      recordUpstreamTiming(request, observeUpstream, started)
      const opened = answer.headers[SESSION_HEADER]
      if (typeof opened === 'string') {
        // The instance opened a session for a request that needs none: nobody would ever end it.
        request.log.warn({ instance: instance.key }, 'an instance opened a session for a 2026-07-28 request: ended at once')
        this.#end(instance, { instance: instance.key, sessionId: opened }, request, 'a session for a 2026-07-28 request')
      }
      return reply.code(answer.statusCode).headers(rewriteUpstreamHeaders({ ...answer.headers }, this.#context.route.passCookies, () => this.#context.resourceMetadataUrl(request))).send(answer.body)
    }
  }

  /** The session's upstream GET stream, moved like a POST when its upstream session is lost. */
  async #openGetStream (request: FastifyRequest, session: LiveSession, headers: Record<string, string | string[] | undefined>, signal: AbortSignal): Promise<UpstreamAnswer> {
    let target = session.upstream ?? NO_UPSTREAM_SESSION
    let conflicts = 0
    let moved = false
    for (let attempt = 1; ; attempt++) {
      const instance = this.#instances.byKey(target.instance)
      if (instance === undefined || this.#instances.shouldLeave(instance)) {
        target = await this.#move(request, session, target, instance === undefined ? 'not_found' : 'ejected', attempt)
        moved = true
        continue
      }
      const upstreamHeaders = { ...headers, host: instance.client.host, ...(target.sessionId === '' ? {} : { [SESSION_HEADER]: target.sessionId }) }
      let answer: UpstreamAnswer
      try {
        answer = await instance.client.getStream(upstreamHeaders, signal)
      } catch (error) {
        if (signal.aborted || upstreamFailure(error).code !== 'MCPGW_UPSTREAM_UNREACHABLE') throw error
        this.#instances.eject(instance, 'refused or dropped a connection')
        target = await this.#move(request, session, target, 'unreachable', attempt)
        moved = true
        continue
      }
      // Destroyed whatever fails before it is handed to the GET stream.
      using body = new DisposableStack()
      body.defer(() => { answer.body.destroy() })
      this.#context.checkpoint('stateful get: opened')
      if (answer.statusCode === 404 && target.sessionId !== '') {
        body.dispose()
        if (moved) throw this.#sessionLost(instance)
        target = await this.#move(request, session, target, 'not_found', attempt)
        moved = true
        continue
      }
      if (target.sessionId !== '') this.#instances.keptSession(instance)
      if (answer.statusCode === 409 && conflicts++ < GET_CONFLICT_RETRIES) {
        // The session's older GET (ended by this newer one, docs/streams.md) is still closing upstream.
        body.dispose()
        await new Promise((resolve) => setTimeout(resolve, GET_CONFLICT_WAIT_MS))
        attempt--
        continue
      }
      this.#endWithInstance(instance, answer)
      body.move()
      return answer
    }
  }

  async #move (request: FastifyRequest, session: LiveSession, lost: UpstreamSessionRef, cause: FailoverCause, attempt: number): Promise<UpstreamSessionRef> {
    if (attempt >= MAX_ATTEMPTS) throw new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: 'the session\'s upstream session was lost again while it was being moved' })
    return await this.#failover.move(session, request.mcp.principal, lost, cause, bridgedRequestHeaders(request))
  }

  /**
   * The request's upstream session, opened for it by a move, answered 404 at once: the instance
   * forgets sessions. No second move (one replay per request); the instance is left out of
   * placement for a while (upstream-instances.ts), and the client gets MCPGW_UPSTREAM_SESSION_LOST.
   */
  #sessionLost (instance: UpstreamInstance): GatewayError {
    this.#instances.forgotFreshSession(instance)
    return new GatewayError('MCPGW_UPSTREAM_SESSION_LOST')
  }

  /** `sent`: the headers the request went to the instance with (its upstream session), for a cancellation. */
  #answer (request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession, instance: UpstreamInstance, answer: UpstreamAnswer, sent: IncomingHttpHeaders): FastifyReply {
    const headers = rewriteUpstreamHeaders({ ...answer.headers }, this.#context.route.passCookies, () => this.#context.resourceMetadataUrl(request))
    reply.code(answer.statusCode).headers(headers)
    this.#endWithInstance(instance, answer)
    if (relaysStreams(this.#context.streams) && isRelayableStream(reply)) {
      reply.removeHeader('content-length')
      relayResponseStream(this.#context, request, reply, post, session, answer.body, async (id) => { await sendCancellation(instance.client, sent, id, GAVE_UP, request.log) })
      return reply
    }
    return reply.send(answer.body)
  }

  /** MCPGW_UPSTREAM_CALL_INTERRUPTED for each request of the POST (in-band: the session is fine). */
  #interrupted (reply: FastifyReply, post: ClientPost): FastifyReply {
    const error = new GatewayError('MCPGW_UPSTREAM_CALL_INTERRUPTED')
    const requests = post.messages.filter(isRequest)
    const bodies = requests.map((message) => jsonRpcErrorBody(error, message.id))
    return reply.code(error.statusCode).type('application/json').send(post.isBatch ? bodies : bodies[0] ?? jsonRpcErrorBody(error, post.id))
  }

  /**
   * The `logging/setLevel` and `resources/(un)subscribe` of a POST (a batch's too), kept once the
   * instance took them, for a replay on another.
   */
  #settingsOf (post: ClientPost, session: LiveSession): readonly BridgeStateChange[] {
    // The request decision read the session's settings only for a POST that has some (request-decision.ts).
    if (session.bridge === undefined) return []
    const changes: BridgeStateChange[] = []
    const subscribed = [...session.bridge.resourceSubscriptions]
    for (const message of post.messages) {
      if (!isRequest(message) || !isSessionSetting(message.method)) continue
      const change = settingChange(message, subscribed, this.#context.limits.maxSubscriptionsPerSession)
      // Invalid params are the instance's to answer; past the limit, it holds the subscription and a replay will not.
      if (typeof change === 'string') continue
      changes.push(change)
      if ('subscribe' in change && !subscribed.includes(change.subscribe)) subscribed.push(change.subscribe)
      const unsubscribed = 'unsubscribe' in change ? subscribed.indexOf(change.unsubscribe) : -1
      if (unsubscribed !== -1) subscribed.splice(unsubscribed, 1)
    }
    return changes
  }

  /**
   * An answer still streaming from an instance that the health check then gives up on is cut: a response
   * stream ends with a JSON-RPC error for its request (session-streams.ts), a GET stream ends and
   * the client's next GET finds the session on its new instance.
   */
  #endWithInstance (instance: UpstreamInstance, answer: UpstreamAnswer): void {
    const done = this.#instances.whileInFlight(instance, () => { answer.body.destroy(new Error('the instance failed its health check')) })
    answer.body.once('close', done)
  }

  async #keepSetting (request: FastifyRequest, session: LiveSession, change: BridgeStateChange): Promise<void> {
    await this.#context.store.updateBridgeState(session.id, request.mcp.principal, change).catch((error: unknown) => {
      request.log.warn({ code: (error as { code?: unknown }).code }, 'a session setting could not be kept: a failover will not replay it')
    })
  }

  /** Ends an upstream session nobody will use, in the client's name; not waited for. */
  #end (instance: UpstreamInstance, upstream: UpstreamSessionRef, request: FastifyRequest, reason: string): void {
    this.#ends.end(instance, upstream, bridgedRequestHeaders(request), reason).catch(() => undefined)
  }
}
