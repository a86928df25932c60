import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ClientPost, JsonRpcRequest } from '../mcp/json-rpc.js'
import type { LiveSession } from '../sessions/session-store.js'
import type { SseResponse } from '../streams/sse-response.js'

/**
 * What serves a legacy-era request once the edge has checked it (request-decision.ts): either the
 * forwarded handler (a legacy upstream) or the bridged one (a 2026-07-28 upstream).
 */
export interface LegacyHandler {
  /** An initialize without a session id: mints a session when it succeeds. */
  initialize (request: FastifyRequest, reply: FastifyReply, initialize: JsonRpcRequest): Promise<FastifyReply>
  /** Any other POST, on a live session. */
  post (request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession): Promise<FastifyReply>
  /**
   * The standalone GET stream of a live session (`getStream: forward`). `client`: the response a
   * resume already opened (it replayed an older standalone stream first: docs/streams.md).
   */
  getStream (request: FastifyRequest, reply: FastifyReply, session: LiveSession, client?: SseResponse): Promise<FastifyReply>
}
