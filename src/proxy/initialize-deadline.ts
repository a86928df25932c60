import type { FastifyReply } from 'fastify'
import { GatewayError } from '../errors.js'
import type { UpstreamObserver } from '../upstream/forward-request.js'
import { isUpstreamFailure, upstreamFailure } from '../upstream/upstream-failure.js'

/*
 * How long an initialize may wait for what decides it (the upstream's answer, or its
 * `server/discover` on a bridged route): `routes[].initializeTimeout`, past which the client gets
 * 504. A client that leaves before then ends the wait too: there is nothing to deliver and nothing
 * is minted (docs/operating.md).
 */

/** The client left before its initialize was answered. */
export class ClientGone extends Error {}

export interface InitializeDeadline {
  /** Aborts at the deadline (reason: MCPGW_UPSTREAM_TIMEOUT) or when the client leaves (reason: ClientGone). */
  readonly signal: AbortSignal
  /** Whether the client has left. */
  clientGone (): boolean
  /** The wait is over (decided): the deadline and the client watch stop. */
  release (): void
}

export function initializeDeadline (reply: FastifyReply, timeoutMs: number): InitializeDeadline {
  const deciding = new AbortController()
  const timer = setTimeout(() => {
    deciding.abort(new GatewayError('MCPGW_UPSTREAM_TIMEOUT', { detail: `no initialize answer within routes[].initializeTimeout (${timeoutMs} ms)` }))
  }, timeoutMs)
  const onClose = (): void => { if (!reply.raw.writableFinished) deciding.abort(new ClientGone()) }
  reply.raw.once('close', onClose)
  // Gone already (while the era probe ran, say): the 'close' event will not come again.
  if (reply.raw.destroyed || reply.request.raw.socket?.destroyed === true) deciding.abort(new ClientGone())
  return {
    signal: deciding.signal,
    clientGone: () => deciding.signal.aborted && deciding.signal.reason instanceof ClientGone,
    release: () => {
      clearTimeout(timer)
      reply.raw.off('close', onClose)
    }
  }
}

/**
 * What a forwarded initialize that failed before it was decided answers: nothing when the client
 * left (only its log line says so); otherwise the failure (504 at the deadline, 502 when the upstream
 * went away), without the upstream headers already set for a body that is no longer sent.
 */
export function initializeFailed (reply: FastifyReply, signal: AbortSignal, error: unknown, observe: UpstreamObserver): FastifyReply {
  const reason: unknown = signal.aborted ? signal.reason : error
  if (reason instanceof ClientGone) {
    reply.request.mcp.outcome = 'client left before the initialize answer'
    return reply
  }
  for (const name of Object.keys(reply.getHeaders())) if (name !== 'x-request-id') reply.removeHeader(name)
  const failure = upstreamFailure(reason)
  if (isUpstreamFailure(failure)) observe.upstreamFailed(failure)
  throw failure
}
