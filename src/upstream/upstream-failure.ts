import { GatewayError } from '../errors.js'

/*
 * Upstream failures map to HTTP in this one place: the upstream refused or dropped the connection
 * → 502; it did not answer in time → 504 (docs/errors.md). Our own dependency (Redis) being down
 * is a 503 and never comes through here. A coded error passes unchanged (the bridge's
 * MCPGW_UPSTREAM_INVALID_RESPONSE, say). The error body echoes the client's JSON-RPC id and the
 * response carries the request's x-request-id, like every answer of the gateway.
 */

const timeoutCodes = new Set([
  'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT',
  'FST_REPLY_FROM_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT', 'FST_REPLY_FROM_HTTP_REQUEST_TIMEOUT'
])

/** The error and its causes, a few levels deep (undici and reply-from wrap what they caught). */
function causeChain (error: unknown): Array<{ code?: unknown, name?: unknown }> {
  const chain: Array<{ code?: unknown, name?: unknown }> = []
  let current: unknown = error
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    chain.push(current as { code?: unknown, name?: unknown })
    current = (current as { cause?: unknown }).cause
  }
  return chain
}

function isTimeout (link: { code?: unknown, name?: unknown }): boolean {
  // `AbortSignal.timeout()` aborts with a DOMException named TimeoutError.
  return (typeof link.code === 'string' && timeoutCodes.has(link.code)) || link.name === 'TimeoutError'
}

export function upstreamFailure (error: unknown): GatewayError {
  if (error instanceof GatewayError) return error
  if (causeChain(error).some(isTimeout)) return new GatewayError('MCPGW_UPSTREAM_TIMEOUT', { cause: error })
  return new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { cause: error })
}

/** The `kind` label of `mcpgw_upstream_errors_total` for a failure. */
export function upstreamFailureKind (failure: GatewayError): 'timeout' | 'invalid' | 'unreachable' {
  if (failure.code === 'MCPGW_UPSTREAM_TIMEOUT') return 'timeout'
  if (failure.code === 'MCPGW_UPSTREAM_INVALID_RESPONSE') return 'invalid'
  return 'unreachable'
}
