import type { FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import { mediaType } from '../mcp/media-type.js'
import { withResourceMetadata } from '../oauth/resource-metadata-url.js'

/* Which headers cross the gateway, in each direction, for forwarded and for bridged requests. */

export const SESSION_HEADER = 'mcp-session-id'

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: never passed on,
 * in either direction. `expect: 100-continue` too (RFC 9110 §10.1.1): it asks the next hop for an
 * interim answer, which the gateway has already given by reading the body (undici refuses it).
 */
const hopByHopHeaders = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect']

/** Removes the hop-by-hop headers and every header the Connection header names. */
function removeConnectionHeaders (headers: IncomingHttpHeaders): void {
  const connection = headers.connection
  const named = Array.isArray(connection) ? connection.join(',') : connection ?? ''
  for (const name of named.split(',')) {
    const trimmed = name.trim().toLowerCase()
    if (trimmed !== '') delete headers[trimmed]
  }
  for (const name of hopByHopHeaders) delete headers[name]
}

/**
 * Headers on their way up. The client's session id is ours; the stateless upstream never sees it
 * (docs/architecture.md, "The request path"); on a modern request it means nothing and is
 * dropped the same way (2026-07-28: "ignore it"). The request id and, with tracing, the trace
 * context go along (docs/operating.md).
 */
export function upstreamRequestHeaders (request: Pick<FastifyRequest, 'id' | 'mcp'>, headers: IncomingHttpHeaders): IncomingHttpHeaders {
  removeConnectionHeaders(headers)
  delete headers[SESSION_HEADER]
  if (!request.mcp.passCookies) delete headers.cookie
  headers['x-request-id'] = request.id
  const span = request.mcp.span
  if (span !== undefined) Object.assign(headers, span.propagationHeaders())
  return headers
}

/**
 * Upstream headers on their way back. A session id set by the upstream itself would contradict ours:
 * drop it; its cookies too, unless the route passes them (`passCookies`: a browser would send them to
 * every route of the origin). SSE must never be buffered by a proxy in front of us (X-Accel-Buffering: no).
 */
export function rewriteUpstreamHeaders (headers: IncomingHttpHeaders, passCookies: boolean, resourceMetadataUrl?: () => string): IncomingHttpHeaders {
  removeConnectionHeaders(headers)
  delete headers[SESSION_HEADER]
  if (!passCookies) delete headers['set-cookie']
  // An upstream's OAuth challenge names its internal URL; clients must find the gateway's (RFC 9728).
  const challenge = headers['www-authenticate']
  // Asked for only when there is a challenge: the URL costs nothing on an ordinary answer.
  if (resourceMetadataUrl !== undefined && challenge !== undefined) headers['www-authenticate'] = withResourceMetadata(challenge, resourceMetadataUrl())
  if (mediaType(headers['content-type']) === 'text/event-stream') headers['x-accel-buffering'] = 'no'
  return headers
}

/** A forwarded request's headers, for a request the gateway makes itself rather than through reply-from. */
export function forwardedRequestHeaders (request: Pick<FastifyRequest, 'id' | 'mcp' | 'headers'>, upstreamHost: string): IncomingHttpHeaders {
  const headers = upstreamRequestHeaders(request, { ...request.headers })
  headers.host = upstreamHost
  return headers
}

/** What the bridge sets itself on a modern request, or what describes the client's own connection or body. */
const notBridgedHeaders = [...hopByHopHeaders, 'host', 'content-length', 'content-type', 'accept', 'accept-encoding',
  'mcp-protocol-version', 'mcp-method', 'mcp-name', 'last-event-id']

/** The client's headers (authorization, say) for a request the bridge makes on its behalf. */
export function bridgedRequestHeaders (request: Pick<FastifyRequest, 'id' | 'mcp' | 'headers'>): Record<string, string> {
  const headers = upstreamRequestHeaders(request, { ...request.headers })
  for (const name of notBridgedHeaders) delete headers[name]
  const flat: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return flat
}
