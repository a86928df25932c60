import { GatewayError } from '../errors.js'

/*
 * Upstream failures map to HTTP in this one place: the upstream refused or dropped the connection
 * → 502 MCPGW_UPSTREAM_UNREACHABLE; it answered, but with bytes the gateway cannot read as an HTTP
 * answer → 502 MCPGW_UPSTREAM_INVALID_RESPONSE; it did not answer in time → 504 (docs/errors.md).
 * Only the first says anything about the upstream's connection: on a stateful route it is what
 * moves a session (docs/stateful-upstreams.md, "Failover"). Our own dependency (Redis) being down
 * is a 503 and never comes through here. A coded error passes unchanged (the bridge's
 * MCPGW_UPSTREAM_INVALID_RESPONSE, say). Anything else is a fault of the gateway's own: 500
 * MCPGW_INTERNAL_ERROR, logged, and never counted as an upstream error. The error body echoes the
 * client's JSON-RPC id and the response carries the request's x-request-id, like every answer of
 * the gateway.
 */

const timeoutCodes = new Set([
  'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT',
  'FST_REPLY_FROM_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT', 'FST_REPLY_FROM_HTTP_REQUEST_TIMEOUT'
])

/**
 * An answer that came, but that undici cannot read: a header section over its 16 KiB limit (legal
 * HTTP all the same), a body longer or shorter than its Content-Length, more than it may hold.
 * The connection worked; the instance is alive and did see the request.
 */
const invalidResponseCodes = new Map([
  ['UND_ERR_HEADERS_OVERFLOW', 'its header section is larger than the gateway reads (16 KiB)'],
  ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'its body does not match its Content-Length'],
  ['UND_ERR_RES_EXCEEDED_MAX_SIZE', 'it is larger than the gateway reads']
])

interface ErrorLink { readonly code?: unknown, readonly name?: unknown }

/** The error and its causes, a few levels deep (undici and reply-from wrap what they caught). */
function causeChain (error: unknown): ErrorLink[] {
  const chain: ErrorLink[] = []
  let current: unknown = error
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    chain.push(current as ErrorLink)
    current = (current as { cause?: unknown }).cause
  }
  return chain
}

function isTimeout (link: ErrorLink): boolean {
  // `AbortSignal.timeout()` aborts with a DOMException named TimeoutError.
  return (typeof link.code === 'string' && timeoutCodes.has(link.code)) || link.name === 'TimeoutError'
}

/** What is wrong with an answer the gateway cannot read; undefined when the failure is not that. */
function invalidResponse (link: ErrorLink): string | undefined {
  const code = typeof link.code === 'string' ? link.code : ''
  // llhttp's verdict on bytes that are not an HTTP response: undici's HTTPParserError, coded HPE_* when llhttp gave a code.
  if (code.startsWith('HPE_') || link.name === 'HTTPParserError') return 'it is not a valid HTTP response'
  return invalidResponseCodes.get(code)
}

/**
 * A failure of the connection or of the exchange with the upstream: a system error code
 * (ECONNREFUSED, ECONNRESET, EPIPE, ENOTFOUND, …), one of undici's (UND_ERR_*), or an abort.
 */
function isConnectionFailure (link: ErrorLink): boolean {
  const code = typeof link.code === 'string' ? link.code : ''
  return /^E[A-Z_]+$/.test(code) || code.startsWith('UND_ERR_') || link.name === 'AbortError'
}

export function upstreamFailure (error: unknown): GatewayError {
  if (error instanceof GatewayError) return error
  const chain = causeChain(error)
  if (chain.some(isTimeout)) return new GatewayError('MCPGW_UPSTREAM_TIMEOUT', { cause: error })
  const invalid = chain.map(invalidResponse).find((detail) => detail !== undefined)
  if (invalid !== undefined) return new GatewayError('MCPGW_UPSTREAM_INVALID_RESPONSE', { detail: invalid, cause: error })
  if (chain.some(isConnectionFailure)) return new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { cause: error })
  return new GatewayError('MCPGW_INTERNAL_ERROR', { cause: error })
}

/** Whether a failure is the upstream's (counted in `mcpgw_upstream_errors_total`) rather than ours. */
export function isUpstreamFailure (failure: GatewayError): boolean {
  return failure.code.startsWith('MCPGW_UPSTREAM_')
}

/** The `kind` label of `mcpgw_upstream_errors_total` for a failure. */
export function upstreamFailureKind (failure: GatewayError): 'timeout' | 'invalid' | 'too_large' | 'session_lost' | 'unreachable' {
  if (failure.code === 'MCPGW_UPSTREAM_TIMEOUT') return 'timeout'
  if (failure.code === 'MCPGW_UPSTREAM_SESSION_LOST') return 'session_lost'
  if (failure.code === 'MCPGW_UPSTREAM_INVALID_RESPONSE') return 'invalid'
  if (failure.code === 'MCPGW_UPSTREAM_RESPONSE_TOO_LARGE') return 'too_large'
  return 'unreachable'
}
