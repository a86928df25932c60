import type { FastifyReply, FastifyRequest } from 'fastify'
import { forwardRequest } from '../upstream/forward-request.js'
import type { RouteContext } from './route-context.js'

/*
 * A 2026-07-28 request (per-request metadata, no session): stateless by definition, so it passes
 * straight through whatever the route's upstream era. No session is checked or minted, and any
 * Mcp-Session-Id it carries is ignored (2026-07-28, Basic › Transports › Streamable HTTP).
 */
export class ModernPassThroughHandler {
  readonly #context: RouteContext

  constructor (context: RouteContext) {
    this.#context = context
  }

  async modernPost (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    request.mcp.era = 'modern'
    return forwardRequest(this.#context.upstream, this.#context.observeUpstream, () => this.#context.resourceMetadataUrl(request), request, reply)
  }
}
