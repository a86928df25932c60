import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { ClientPost, JsonRpcRequest } from '../mcp/json-rpc.js'
import { forwardRequest, recordUpstreamTiming } from '../upstream/forward-request.js'
import { GAVE_UP, sendCancellation } from '../upstream/upstream-cancellation.js'
import { isSuccessStatus, type UpstreamAnswer } from '../upstream/upstream-client.js'
import { mediaType } from '../mcp/media-type.js'
import { isUpstreamFailure, upstreamFailure } from '../upstream/upstream-failure.js'
import { forwardedRequestHeaders, rewriteUpstreamHeaders, SESSION_HEADER } from '../upstream/upstream-headers.js'
import type { LiveSession } from '../sessions/session-store.js'
import type { LegacyHandler } from './legacy-handler.js'
import type { RouteContext } from './route-context.js'
import { initializeDeadline, initializeFailed } from './initialize-deadline.js'
import { mintForAnswer, type StatefulMint } from './session-minting.js'
import { guardSessionStream } from './session-stream-guard.js'
import { recordedStream, relayCancellations, relayResponseStream, relaysStreams, relayUpstreamEvents } from './session-streams.js'
import type { SseResponse } from '../streams/sse-response.js'

/*
 * Legacy requests to a legacy (stateless) upstream: forwarded as they are, body unchanged, the
 * session header removed. Only initialize is looked into: its answer decides whether a session is
 * minted (docs/architecture.md).
 */

/**
 * Opens the upstream GET stream of a session, given the forwarded request's headers: the route's
 * one upstream by default; a stateful route's session instance (docs/stateful-upstreams.md).
 */
export type OpenUpstreamStream = (request: FastifyRequest, session: LiveSession, headers: IncomingHttpHeaders, signal: AbortSignal) => Promise<UpstreamAnswer>

/** An initialize's upstream answer; on a stateful route, with the upstream session it opened. */
export interface InitializeAnswer {
  readonly answer: UpstreamAnswer
  readonly stateful?: StatefulMint
}

/**
 * Sends an initialize upstream (`send`, bounded by the deadline's signal) and mints a session only
 * if the answer carries a result (mintForAnswer). Until the answer is known the wait is bounded by
 * `routes[].initializeTimeout` (504), and a client that leaves ends the upstream request.
 */
export async function forwardInitialize (context: RouteContext, request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest, send: (signal: AbortSignal) => Promise<InitializeAnswer>): Promise<FastifyReply> {
  const { route, observeUpstream } = context
  const deadline = initializeDeadline(reply, route.initializeTimeout)
  const deciding = deadline.signal
  let answer: UpstreamAnswer | undefined
  let sent: InitializeAnswer | undefined
  try {
    const started = performance.now()
    sent = await send(deciding)
    answer = sent.answer
    context.checkpoint('initialize: answered')
    recordUpstreamTiming(request, observeUpstream, started)
    reply.code(answer.statusCode).headers(rewriteUpstreamHeaders({ ...answer.headers }, context.route.passCookies, () => context.resourceMetadataUrl(request)))
    // Not awaited: the rest of the body streams after the decision, outside its deadline.
    if (!isSuccessStatus(answer.statusCode)) {
      sent.stateful?.discard()
      return reply.send(answer.body)
    }
    return reply.send(await mintForAnswer(context, request, reply, answer, initialize, sent.stateful))
  } catch (error) {
    answer?.body.destroy()
    // Whatever the upstream opened before the wait ended (the client left, the deadline passed) is nobody's.
    if (!reply.hasHeader(SESSION_HEADER)) sent?.stateful?.discard()
    return initializeFailed(reply, deciding, error, observeUpstream)
  } finally {
    deadline.release()
  }
}

export class LegacyForwardedHandler implements LegacyHandler {
  readonly #context: RouteContext
  readonly #openStream: OpenUpstreamStream

  constructor (context: RouteContext, openStream?: OpenUpstreamStream) {
    this.#context = context
    this.#openStream = openStream ?? (async (_request, _session, headers, signal) => await context.upstream.getStream(headers, signal))
  }

  /**
   * Forwards an initialize and mints a session only if the upstream answered it with a result; HTTP
   * 200 alone proves nothing (the error may be inside it, in JSON or SSE). Anything else goes back
   * to the client unchanged. Until the answer is known the wait is bounded by
   * `routes[].initializeTimeout` (504), and a client that leaves ends the upstream request.
   */
  async initialize (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply> {
    const { upstream } = this.#context
    return await forwardInitialize(this.#context, request, reply, initialize, async (signal) => ({
      answer: await upstream.postBytes(forwardedRequestHeaders(request, upstream.host), request.body as Buffer, signal)
    }))
  }

  /**
   * A POST on a live session, forwarded. An SSE answer is relayed event by event (ids, kept for
   * resumption, keep-alive: docs/streams.md); a JSON answer passes through untouched.
   */
  async post (request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession): Promise<FastifyReply> {
    const { streams, upstream, observeUpstream } = this.#context
    const resourceMetadataUrl = (): string => this.#context.resourceMetadataUrl(request)
    await relayCancellations(this.#context, request, post, session)
    this.#context.checkpoint('forwarded post: cancellations relayed')
    if (!relaysStreams(streams)) return forwardRequest(upstream, observeUpstream, resourceMetadataUrl, request, reply)
    return forwardRequest(upstream, observeUpstream, resourceMetadataUrl, request, reply, (body) => {
      relayResponseStream(this.#context, request, reply, post, session, body, async (id) => {
        await sendCancellation(upstream, forwardedRequestHeaders(request, upstream.host), id, GAVE_UP, request.log)
      })
    })
  }

  /**
   * The upstream's GET stream, relayed as the session's standalone stream: one per session (a newer
   * GET on any replica ends this one), ended with the session (session-stream-guard.ts). `client`:
   * a response already opened by a resume (docs/streams.md).
   */
  async getStream (request: FastifyRequest, reply: FastifyReply, session: LiveSession, client?: SseResponse): Promise<FastifyReply> {
    const { store, relay, sessionTimeouts, upstream, observeUpstream } = this.#context
    // What this handler takes is given back when it returns or throws, whatever failed, unless the
    // relay took it over (docs/architecture.md, "Resources").
    using taken = new DisposableStack()
    // A resume's response continues here; ended if nothing is relayed into it.
    if (client !== undefined) taken.defer(() => { client.end() })
    const guard = taken.adopt(guardSessionStream({ store, relay, session, principal: request.mcp.principal, ...sessionTimeouts, log: request.log }), (held) => { held.release() })
    const stream = recordedStream(this.#context, request, reply, session, 'standalone', client)
    taken.defer(() => { stream.end() })
    const onEnded = (): void => { stream.stop('session ended') }
    guard.ended.addEventListener('abort', onEnded, { once: true })
    taken.defer(() => { guard.ended.removeEventListener('abort', onEnded) })
    this.#context.checkpoint('forwarded get: guarded')
    let answer: UpstreamAnswer
    try {
      const started = performance.now()
      const headers = forwardedRequestHeaders(request, upstream.host)
      // The client's Last-Event-ID names one of the gateway's streams, nothing the upstream knows.
      if (this.#context.streams.events !== undefined) delete headers['last-event-id']
      answer = await this.#openStream(request, session, headers, AbortSignal.any([stream.stopped, client?.detached ?? new AbortController().signal]))
      recordUpstreamTiming(request, observeUpstream, started)
    } catch (error) {
      const failure = upstreamFailure(error)
      if (isUpstreamFailure(failure)) observeUpstream.upstreamFailed(failure)
      if (client === undefined) throw failure
      return reply
    }
    // The upstream's body: destroyed with the rest, unless the reply or the relay takes it.
    using body = new DisposableStack()
    body.defer(() => { answer.body.destroy() })
    this.#context.checkpoint('forwarded get: opened')
    const headers = rewriteUpstreamHeaders({ ...answer.headers }, this.#context.route.passCookies, () => this.#context.resourceMetadataUrl(request))
    if (!isSuccessStatus(answer.statusCode) || mediaType(headers['content-type']) !== 'text/event-stream' || (headers['content-encoding'] ?? 'identity') !== 'identity') {
      if (client !== undefined) return reply
      // Not a stream: the upstream's answer goes to the client as it is, and the body is the reply's.
      body.move()
      return reply.code(answer.statusCode).headers(headers).send(answer.body)
    }
    delete headers['content-length']
    stream.start(answer.statusCode, headers)
    this.#context.checkpoint('forwarded get: stream started')
    body.move()
    const relayed = taken.move()
    relayUpstreamEvents(answer.body, stream, upstream.maxResponseBytes, request, observeUpstream).finally(() => { relayed.dispose() }).catch(() => undefined)
    return reply
  }
}
