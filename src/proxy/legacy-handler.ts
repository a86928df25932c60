import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ClientPost, JsonRpcRequest } from '../mcp/json-rpc.js'
import type { LiveSession } from '../sessions/session-store.js'

/**
 * What serves a legacy-era request once the edge has checked it (request-decision.ts): either the
 * forwarded handler (a legacy upstream) or the bridged one (a 2026-07-28 upstream).
 */
export interface LegacyHandler {
  /** An initialize without a session id: mints a session when it succeeds. */
  initialize (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply>
  /** Any other POST, on a live session. */
  post (request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession): Promise<FastifyReply>
  /** The standalone GET stream of a live session (`getStream: forward`). */
  getStream (request: FastifyRequest, reply: FastifyReply, session: LiveSession): Promise<FastifyReply>
}
