import type { FastifyReply, FastifyRequest } from 'fastify'
import { GatewayError } from '../errors.js'
import { inspectInitializeResponse } from '../mcp/initialize-response.js'
import type { JsonRpcRequest } from '../mcp/json-rpc.js'
import { forwardRequest, type ForwardedAnswer } from '../upstream/forward-request.js'
import { upstreamFailure } from '../upstream/upstream-failure.js'
import type { LegacyHandler } from './legacy-handler.js'
import type { RouteContext } from './route-context.js'
import { sendGatewayError } from './send-gateway-error.js'
import { mintSession } from './session-minting.js'

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
   * to the client unchanged.
   */
  async initialize (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply> {
    return this.#forward(request, reply, (answer) => {
      if (answer.statusCode < 200 || answer.statusCode > 299) {
        reply.send(answer.stream)
        return
      }
      this.#mintFromAnswer(request, reply, initialize, answer).catch((error: unknown) => {
        answer.stream.destroy()
        // reply-from already copied the upstream's headers (content-type, length): they describe a
        // body that is no longer sent.
        for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
        sendGatewayError(reply, error instanceof GatewayError ? error : upstreamFailure(error))
      })
    })
  }

  async post (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    return this.#forward(request, reply)
  }

  async getStream (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    return this.#forward(request, reply)
  }

  #forward (request: FastifyRequest, reply: FastifyReply, onAnswer?: (answer: ForwardedAnswer) => void): FastifyReply {
    return forwardRequest(this.#context.upstream, this.#context.observeUpstream, request, reply, onAnswer)
  }

  async #mintFromAnswer (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest, answer: ForwardedAnswer): Promise<void> {
    const inspected = await inspectInitializeResponse(answer.stream, answer.headers['content-type'], initialize.id)
    if (!inspected.outcome.minted) {
      request.mcp.outcome = `not minted: ${inspected.outcome.reason}`
      reply.send(inspected.body)
      return
    }
    try {
      await mintSession(this.#context, request, reply, initialize, inspected.outcome.protocolVersion)
    } catch (error) {
      inspected.body.destroy()
      throw error
    }
    reply.send(inspected.body)
  }
}
