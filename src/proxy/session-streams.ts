import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import { isRequest, type ClientPost } from '../mcp/json-rpc.js'
import { GatewayError, jsonRpcErrorBody, type JsonRpcId } from '../errors.js'
import { SseParser } from '../mcp/sse-parser.js'
import type { LiveSession } from '../sessions/session-store.js'
import type { StreamKind } from '../streams/event-id.js'
import { RecordedStream } from '../streams/recorded-stream.js'
import { SseResponse } from '../streams/sse-response.js'
import type { StreamSettings } from '../streams/stream-settings.js'
import type { UpstreamObserver } from '../upstream/forward-request.js'
import type { RouteContext } from './route-context.js'
import { slideInterval } from './session-stream-guard.js'

/* The SSE streams of a route's legacy sessions (docs/streams.md): how they are made and fed. */

/** The first revision whose clients expect a priming event (an id, empty data) at a stream's start. */
const PRIMING_SINCE = '2025-11-25'

/** Whether a route relays a forwarded SSE answer itself (ids, keep-alive) rather than passing its bytes on. */
export function relaysStreams (streams: StreamSettings): boolean {
  return streams.events !== undefined || streams.keepAlive > 0
}

/** What a response stream knows of the requests it answers (one, or each of a batch's). */
export interface AnsweredRequests {
  readonly ids: readonly JsonRpcId[]
  /** Tells the upstream a request is cancelled, when the gateway gives up on it. */
  readonly cancelUpstream?: ((id: JsonRpcId) => Promise<void>) | undefined
}

/**
 * A stream of `session` for this request: kept in the route's event store (when resumable), primed
 * for 2025-11-25 sessions (version dates compare as text), ended with its session, bounded by the
 * limits of docs/streams.md. `client`: a response a resume already opened.
 */
export function recordedStream (context: RouteContext, request: FastifyRequest, reply: FastifyReply, session: LiveSession, kind: StreamKind, client?: SseResponse, answers?: AnsweredRequests): RecordedStream {
  const { streams, relay } = context
  return new RecordedStream({
    registry: streams.registry,
    requestIds: answers?.ids,
    cancelUpstream: answers?.cancelUpstream,
    onKeepLimit: (limit) => { streams.observe.limitReached(limit) },
    events: streams.events,
    owner: { sessionId: session.id, principal: request.mcp.principal },
    kind,
    client: client ?? new SseResponse(reply, streams),
    priming: session.protocolVersion >= PRIMING_SINCE,
    relay,
    retention: streams.retention,
    log: request.log,
    sessionLive: async () => await context.store.touch(session.id, request.mcp.principal) !== null,
    // A standalone (GET) stream's guard slides the session already (session-stream-guard.ts).
    sessionBeat: kind === 'response' ? slideInterval(context.sessionTimeouts.idleTimeout) : 0,
    onEnded: (end) => { streams.observe.streamEnded(end) }
  })
}

/**
 * A client's `notifications/cancelled` cancels its call wherever it runs: passed to every replica
 * (a client that left does not cancel any more, docs/streams.md).
 */
export async function relayCancellations (context: RouteContext, request: FastifyRequest, post: ClientPost, session: LiveSession): Promise<void> {
  for (const message of post.messages) {
    const requestId = 'method' in message && message.method === 'notifications/cancelled' ? (message.params as { requestId?: unknown } | undefined)?.requestId : undefined
    if (typeof requestId === 'string' || typeof requestId === 'number') {
      await context.relay.cancel(session.id, requestId).catch((error: unknown) => {
        request.log.debug({ code: (error as { code?: unknown }).code }, 'could not pass a cancellation to the other replicas')
      })
    }
  }
}

/**
 * Relays the SSE answer of a POST as a recorded response stream of `session`, cancellable from any
 * replica by its JSON-RPC id. The reply already carries the answer's status and headers.
 * `cancelUpstream`: tells the upstream that request `id` is cancelled (upstream-cancellation.ts).
 */
export function relayResponseStream (context: RouteContext, request: FastifyRequest, reply: FastifyReply, post: ClientPost, session: LiveSession, body: Readable, cancelUpstream?: (id: JsonRpcId) => Promise<void>): void {
  // Given back whatever fails before the relay takes them over (docs/architecture.md, "Resources").
  using taken = new DisposableStack()
  taken.defer(() => { body.destroy() })
  const ids = post.messages.filter(isRequest).map((message) => message.id)
  const stream = recordedStream(context, request, reply, session, 'response', undefined, { ids, cancelUpstream })
  taken.defer(() => { stream.end() })
  // A client's cancellation of its request, POSTed to any replica, stops the stream (of a batch: not).
  const rpcId = post.isBatch ? null : request.mcp.rpcId
  if (rpcId !== null) taken.defer(context.relay.trackCall(session.id, rpcId, () => { stream.stop('cancelled') }))
  stream.start()
  context.checkpoint('forwarded post: stream started')
  const relayed = taken.move()
  relayUpstreamEvents(body, stream, context.upstream.maxResponseBytes, request, context.observeUpstream, ids).finally(() => { relayed.dispose() }).catch(() => undefined)
}

/**
 * Relays an upstream SSE body event by event into `stream` until the upstream ends it or the
 * stream is stopped (then the upstream request is closed). Each event is held whole, up to
 * `maxEventBytes`; the next is read only once the client took this one (or left). An event over
 * that ends a response stream with MCPGW_UPSTREAM_RESPONSE_TOO_LARGE for each of `requestIds`.
 */
export async function relayUpstreamEvents (body: Readable, stream: RecordedStream, maxEventBytes: number, request: FastifyRequest, observe: UpstreamObserver, requestIds: readonly JsonRpcId[] = []): Promise<void> {
  const parser = new SseParser(maxEventBytes)
  const stop = (): void => { body.destroy() }
  stream.stopped.addEventListener('abort', stop, { once: true })
  if (stream.stopped.aborted) stop()
  try {
    for await (const chunk of body) {
      // What one read brought goes on together: one append, one write to the client.
      const events = parser.push(chunk as Buffer)
      if (events.length > 0) await stream.events(events.map((event) => ({ data: event.data, type: event.event, id: event.id, retry: event.retry })))
    }
  } catch (error) {
    if (error instanceof GatewayError && error.code === 'MCPGW_UPSTREAM_RESPONSE_TOO_LARGE') {
      observe.upstreamFailed(error)
      await stream.events(requestIds.map((requestId) => ({ data: JSON.stringify(jsonRpcErrorBody(error, requestId)) })))
    } else if (!stream.stopped.aborted) {
      // The upstream (or its instance) went away mid-answer: the pending request ends with an error, never a hang.
      request.log.debug({ code: (error as { code?: unknown }).code }, 'upstream stream ended early')
      const failure = new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: 'the connection to the upstream broke before its answer', cause: error })
      observe.upstreamFailed(failure)
      await stream.events(requestIds.map((requestId) => ({ data: JSON.stringify(jsonRpcErrorBody(failure, requestId)) })))
    }
  } finally {
    stream.stopped.removeEventListener('abort', stop)
    if (stream.stopped.aborted) request.mcp.outcome = `stream ended: ${String(stream.stopped.reason)}`
    stream.end()
  }
}
