import type { FastifyReply, FastifyRequest } from 'fastify'
import { inspectInitializeResponse } from '../mcp/initialize-response.js'
import type { JsonRpcRequest } from '../mcp/json-rpc.js'
import { forwardRequest, recordUpstreamTiming } from '../upstream/forward-request.js'
import { isSuccessStatus, type UpstreamAnswer } from '../upstream/upstream-client.js'
import { isUpstreamFailure, upstreamFailure } from '../upstream/upstream-failure.js'
import { forwardedRequestHeaders, rewriteUpstreamHeaders } from '../upstream/upstream-headers.js'
import type { LiveSession } from '../sessions/session-store.js'
import type { LegacyHandler } from './legacy-handler.js'
import type { RouteContext } from './route-context.js'
import { ClientGone, initializeDeadline } from './initialize-deadline.js'
import { mintSession } from './session-minting.js'
import { guardSessionStream } from './session-stream-guard.js'

/*
 * Legacy requests to a legacy (stateless) upstream: forwarded as they are, body unchanged, the
 * session header removed. Only initialize is looked into: its answer decides whether a session is
 * minted (docs/architecture.md).
 */

export class LegacyForwardedHandler implements LegacyHandler {
  readonly #context: RouteContext

  constructor (context: RouteContext) {
    this.#context = context
  }

  /**
   * Forwards an initialize and mints a session only if the upstream answered it with a result; HTTP
   * 200 alone proves nothing (the error may be inside it, in JSON or SSE). Anything else goes back
   * to the client unchanged. Until the answer is known the wait is bounded by
   * `routes[].initializeTimeout` (504), and a client that leaves ends the upstream request.
   */
  async initialize (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply> {
    const { route, upstream, observeUpstream } = this.#context
    const deadline = initializeDeadline(reply, route.initializeTimeout)
    const deciding = deadline.signal
    let answer: UpstreamAnswer | undefined
    try {
      const started = performance.now()
      answer = await upstream.postBytes(forwardedRequestHeaders(request, upstream.host), request.body as Buffer, deciding)
      recordUpstreamTiming(request, observeUpstream, started)
      reply.code(answer.statusCode).headers(rewriteUpstreamHeaders({ ...answer.headers }, () => this.#context.resourceMetadataUrl(request)))
      // Not awaited: the rest of the body streams after the decision, outside its deadline.
      if (!isSuccessStatus(answer.statusCode)) return reply.send(answer.body)
      const inspected = await inspectInitializeResponse(answer.body, answer.headers['content-type'], initialize.id, upstream.maxResponseBytes)
      if (inspected.outcome.minted) {
        try {
          await mintSession(this.#context, request, reply, initialize, inspected.outcome.protocolVersion)
        } catch (error) {
          inspected.body.destroy()
          throw error
        }
      } else {
        request.mcp.outcome = `not minted: ${inspected.outcome.reason}`
      }
      return reply.send(inspected.body)
    } catch (error) {
      answer?.body.destroy()
      const reason: unknown = deciding.aborted ? deciding.reason : error
      if (reason instanceof ClientGone) {
        request.mcp.outcome = 'client left before the initialize answer'
        return reply
      }
      // The upstream's headers were set for a body that is no longer sent; the request id stays.
      for (const name of Object.keys(reply.getHeaders())) if (name !== 'x-request-id') reply.removeHeader(name)
      const failure = upstreamFailure(reason)
      if (isUpstreamFailure(failure)) observeUpstream.upstreamFailed(failure)
      throw failure
    } finally {
      deadline.release()
    }
  }

  async post (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    return forwardRequest(this.#context.upstream, this.#context.observeUpstream, () => this.#context.resourceMetadataUrl(request), request, reply)
  }

  /** The upstream's GET stream, for as long as the session lives (session-stream-guard.ts). */
  async getStream (request: FastifyRequest, reply: FastifyReply, session: LiveSession): Promise<FastifyReply> {
    const { store, relay, sessionTimeouts } = this.#context
    const guard = guardSessionStream({ store, relay, session, principal: request.mcp.principal, ...sessionTimeouts, log: request.log })
    const onEnded = (): void => {
      request.mcp.outcome = 'stream ended with its session'
      reply.raw.destroy()
    }
    guard.ended.addEventListener('abort', onEnded, { once: true })
    reply.raw.once('close', () => {
      guard.ended.removeEventListener('abort', onEnded)
      guard.release()
    })
    return forwardRequest(this.#context.upstream, this.#context.observeUpstream, () => this.#context.resourceMetadataUrl(request), request, reply)
  }
}
