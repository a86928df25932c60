import type { FastifyBaseLogger } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { JsonRpcId } from '../errors.js'
import type { UpstreamClient } from './upstream-client.js'

/*
 * Tells an upstream that a request it is still serving is cancelled (MCP 2025-11-25, Basic ›
 * Utilities › Cancellation): in the legacy era closing the connection is not a cancellation, so when
 * the gateway gives up on a call whose client left (docs/streams.md, "Limits") the upstream would
 * otherwise run it to the end. A `notifications/cancelled` POSTed with the request's own headers
 * (its credentials; on a stateful route its upstream session), bounded, its answer dropped, never
 * waited for.
 */

/** The `reason` the upstream reads when the gateway gives up on a call (a limit, the shutdown, no one resuming it). */
export const GAVE_UP = 'the gateway stopped relaying this call (docs/streams.md, "Limits")'

/** How long the upstream has to take the notification. */
const CANCELLATION_TIMEOUT_MS = 5_000

/** Resolves once the upstream took the notification, or could not (never rejects). */
export async function sendCancellation (client: UpstreamClient, headers: IncomingHttpHeaders, requestId: JsonRpcId, reason: string, log: FastifyBaseLogger): Promise<void> {
  const { 'content-length': _length, 'last-event-id': _lastEventId, ...rest } = headers
  const body = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason } })
  try {
    const answer = await client.postBytes({ ...rest, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body, AbortSignal.timeout(CANCELLATION_TIMEOUT_MS))
    await answer.body.dump()
  } catch (error) {
    log.debug({ code: (error as { code?: unknown }).code }, 'could not tell the upstream that a request is cancelled')
  }
}
