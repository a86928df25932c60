import type { JsonRpcId } from '../errors.js'
import type { RequestSpan } from '../observability/tracing.js'
import type { RequestAuthority } from '../security/request-authority.js'

/** What the gateway learns about a request while serving it; read by the request log line. */
export interface McpRequestContext {
  /** The configured route path, when the request hit a route. */
  route: string | undefined
  /** JSON-RPC method of a single message, `batch`, or undefined (GET, DELETE, responses). */
  rpcMethod: string | undefined
  /** Id of the JSON-RPC request, echoed in 5xx error bodies. */
  rpcId: JsonRpcId
  /** The authority the client used, read once at the edge (security/request-authority.ts); set before any handler runs. */
  authority: RequestAuthority | undefined
  /** The route's `passCookies`: whether `Cookie` goes to the upstream (upstream/upstream-headers.ts). */
  passCookies: boolean
  /** `modern` for a 2026-07-28 per-request-metadata request; legacy otherwise. */
  era: 'legacy' | 'modern'
  /** Hash of the caller's identity when sessions are bound (security/principal.ts). */
  principal: string | undefined
  /** The session id the request carried or was given; only ever logged shortened. */
  sessionId: string | undefined
  /** What happened to the session (`session created`, `not minted: error-response`, ...). */
  outcome: string | undefined
  /** MCPGW_* code when the gateway answered with an error. */
  errorCode: string | undefined
  /** The request's trace span, when tracing is on. */
  span: RequestSpan | undefined
  /** Whether its log line, count and span end were written (once: observability/request-outcome.ts). */
  completed: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    mcp: McpRequestContext
  }
}

export function newRequestContext (): McpRequestContext {
  return { route: undefined, rpcMethod: undefined, rpcId: null, authority: undefined, passCookies: false, era: 'legacy', principal: undefined, sessionId: undefined, outcome: undefined, errorCode: undefined, span: undefined, completed: false }
}
