import { GatewayError } from '../errors.js'

/*
 * Upstream failures map to HTTP in this one place (STYLE.md §2): the upstream refused or dropped the
 * connection → 502; it did not answer in time → 504. Our own dependency (Redis) being down is a 503
 * and never comes through here.
 */

const timeoutCodes = new Set([
  'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT',
  'FST_REPLY_FROM_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT', 'FST_REPLY_FROM_HTTP_REQUEST_TIMEOUT'
])

function errorCodes (error: unknown): string[] {
  const codes: string[] = []
  let current: unknown = error
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string') codes.push(code)
    current = (current as { cause?: unknown }).cause
  }
  return codes
}

export function upstreamFailure (error: unknown): GatewayError {
  const codes = errorCodes(error)
  if (codes.some((code) => timeoutCodes.has(code))) return new GatewayError('MCPGW_UPSTREAM_TIMEOUT', { cause: error })
  return new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { cause: error })
}
