import type { FastifyReply, FastifyRequest } from 'fastify'
import { GatewayError } from '../errors.js'
import { isWellFormedSessionId } from '../sessions/session-id.js'
import type { SessionEnding } from '../sessions/session-ending.js'
import type { SessionStore } from '../sessions/session-store.js'
import { bridgedRequestHeaders } from '../upstream/upstream-headers.js'
import { checkLegacyVersionHeader, hasSupportedLegacyVersion, refuseModernSessionlessCall, requireLiveSession, requireSessionHeader } from './session-checks.js'

/**
 * DELETE ends the session at the edge, whatever the route's upstream era: a stateless upstream has
 * nothing to end (MCP 2025-11-25, Basic › Transports › Session Management); a stateful one's session
 * is ended after it, in the client's name (docs/stateful-upstreams.md). 204 once it has ended and
 * every replica has been told; 400 without an id; 404 for an id that is not live here.
 */
export async function deleteSession (ending: SessionEnding, store: SessionStore, routePath: string, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  refuseModernSessionlessCall(request)
  const sessionId = requireSessionHeader(request)
  if (!isWellFormedSessionId(sessionId)) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
  if (!hasSupportedLegacyVersion(request)) {
    // A request the gateway refuses must not end the session; but the session check comes first,
    // as on every path: an unknown id is 404 whatever the version header says.
    await requireLiveSession(store, routePath, request, false)
    checkLegacyVersionHeader(request)
  }
  if (!await ending.byClient(sessionId, { route: routePath, principal: request.mcp.principal }, bridgedRequestHeaders(request))) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
  request.mcp.outcome = 'session terminated'
  return await reply.code(204).send()
}
