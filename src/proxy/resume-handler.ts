import type { FastifyReply, FastifyRequest } from 'fastify'
import { GatewayError } from '../errors.js'
import { SseResponse } from '../streams/sse-response.js'
import { resumeStream, type ResumeOutcome } from '../streams/stream-resume.js'
import type { ParsedEventId } from '../streams/event-id.js'
import type { StreamEventStore } from '../streams/stream-event-store.js'
import type { LegacyHandler } from './legacy-handler.js'
import type { StreamDecision } from './request-decision.js'
import type { RouteContext } from './route-context.js'
import { guardSessionStream } from './session-stream-guard.js'

/*
 * `GET` + `Last-Event-ID` on a live session (docs/streams.md): the stream it names is replayed and
 * followed (streams/stream-resume.ts). A response stream ends with its response; a standalone stream
 * continues as the session's new standalone stream, on the same response. An id the store does not
 * hold (expired, another session's, never ours) is served like a GET without it, and logged.
 */
export async function serveResume (context: RouteContext, handler: LegacyHandler, request: FastifyRequest, reply: FastifyReply, decision: StreamDecision & { lastEventId: NonNullable<StreamDecision['lastEventId']> }): Promise<FastifyReply> {
  const { session, lastEventId } = decision
  const { store, relay, sessionTimeouts, streams } = context
  const client = new SseResponse(reply, streams)
  let outcome: ResumeOutcome | undefined
  {
    // Given back whatever fails: the guard, and the response unless the standalone stream goes on in it.
    using taken = new DisposableStack()
    taken.defer(() => { if (!continuesAsStandalone(outcome, lastEventId, client)) client.end() })
    // Ends with the session whatever ends it, and slides its idle timeout while open.
    const guard = taken.adopt(guardSessionStream({ store, relay, session, principal: request.mcp.principal, ...sessionTimeouts, log: request.log }), (held) => { held.release() })
    context.checkpoint('resume: guarded')
    outcome = await resumeStream({
      events: streams.events as StreamEventStore,
      relay,
      owner: { sessionId: session.id, principal: request.mcp.principal },
      lastEventId,
      client,
      retention: streams.retention,
      sessionEnded: guard.ended,
      log: request.log
    })
    context.checkpoint('resume: replayed')
  }
  streams.observe.resumed(outcome === 'ended' ? 'replayed' : outcome)
  if (outcome === 'unknown') {
    request.log.info({ streamKind: lastEventId.kind }, 'Last-Event-ID names no stream kept for this session: served as a GET without it')
    if (!decision.standalone) throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: { allow: 'POST, DELETE' } })
    return await handler.getStream(request, reply, session)
  }
  request.mcp.outcome = `stream resumed: ${outcome}`
  if (continuesAsStandalone(outcome, lastEventId, client)) return await handler.getStream(request, reply, session, client)
  return reply
}

/** A standalone stream replayed to its end continues as the session's new standalone stream, on the same response. */
function continuesAsStandalone (outcome: ResumeOutcome | undefined, lastEventId: ParsedEventId, client: SseResponse): boolean {
  return lastEventId.kind === 'standalone' && outcome === 'ended' && client.attached
}
