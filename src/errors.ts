/**
 * Every error a client or an operator can see, in one place (docs/errors.md).
 *
 * Each entry has a stable code (MCPGW_*), the HTTP status it is answered with and the JSON-RPC
 * error code that goes into the body. The table in docs/errors.md and test/errors.test.ts hold this
 * set as a contract: change one, change all three.
 */

/** JSON-RPC 2.0 error codes (jsonrpc.org/specification §5.1) and the MCP de-facto ones. */
export const JsonRpcErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  InternalError: -32603,
  /** Implementation-defined server error range; the SDKs use it for transport-level refusals. */
  ServerError: -32000,
  /** "Session not found": what the official SDKs answer with HTTP 404 (docs/errors.md). */
  SessionNotFound: -32001,
  InvalidParams: -32602,
  /** 2026-07-28, streamable-http "Server Validation": mirrored headers disagree with the body. */
  HeaderMismatch: -32020,
  /** 2026-07-28 schema: UnsupportedProtocolVersionError, with data { supported, requested }. */
  UnsupportedProtocolVersion: -32022
} as const

/**
 * What the error body's `id` is. JSON-RPC 2.0 §5 wants the request's id whenever it can be read
 * (`echo`). Two exceptions: the legacy session refusals answer `id: null`, exactly as the official
 * SDK servers do (docs/errors.md); a 403 for Origin/Host carries no id at all
 * (streamable-http "Security": "a JSON-RPC error response that has no id").
 */
type IdPolicy = 'echo' | 'null' | 'omit'

interface ErrorDefinition {
  readonly statusCode: number
  readonly jsonRpcCode: number
  readonly message: string
  readonly id?: IdPolicy
}

export const errorDefinitions = {
  MCPGW_PARSE_ERROR: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.ParseError,
    message: 'Parse error: the request body is not valid JSON'
  },
  MCPGW_INVALID_REQUEST: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Invalid Request: the body is not a JSON-RPC 2.0 message'
  },
  MCPGW_INVALID_PARAMETER: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Bad Request: a URL parameter is not valid'
  },
  MCPGW_INITIALIZE_IN_BATCH: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Invalid Request: initialize must not be part of a JSON-RPC batch'
  },
  MCPGW_BATCH_NOT_SUPPORTED: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Invalid Request: JSON-RPC batches are only supported by protocol version 2025-03-26'
  },
  MCPGW_SESSION_ID_REQUIRED: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Bad Request: Mcp-Session-Id header is required',
    id: 'null'
  },
  MCPGW_PROTOCOL_VERSION_UNSUPPORTED: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Bad Request: unsupported MCP-Protocol-Version'
  },
  MCPGW_HEADER_MISMATCH: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.HeaderMismatch,
    message: 'Header mismatch'
  },
  MCPGW_INVALID_ENVELOPE: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidParams,
    message: 'Invalid params: the request _meta envelope is missing or invalid'
  },
  MCPGW_MODERN_VERSION_UNSUPPORTED: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.UnsupportedProtocolVersion,
    message: 'Unsupported protocol version'
  },
  MCPGW_UNAUTHORIZED: {
    statusCode: 401,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Unauthorized: a valid bearer token is required'
  },
  MCPGW_ADMIN_UNAUTHORIZED: {
    statusCode: 401,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Unauthorized: the admin API needs the admin bearer token'
  },
  MCPGW_ORIGIN_NOT_ALLOWED: {
    statusCode: 403,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Forbidden: Origin not allowed',
    id: 'omit'
  },
  MCPGW_HOST_NOT_ALLOWED: {
    statusCode: 403,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Forbidden: Host not allowed',
    id: 'omit'
  },
  MCPGW_INVALID_AUTHORITY: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Bad Request: the request\'s Host (or, behind a trusted proxy, X-Forwarded-Host and X-Forwarded-Proto) is not an authority the gateway can use'
  },
  MCPGW_ALREADY_INITIALIZED: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Invalid Request: this session is already initialized; send initialize without Mcp-Session-Id to start a new one'
  },
  MCPGW_SESSION_NOT_FOUND: {
    statusCode: 404,
    jsonRpcCode: JsonRpcErrorCode.SessionNotFound,
    message: 'Session not found',
    id: 'null'
  },
  MCPGW_RESOURCE_METADATA_NOT_FOUND: {
    statusCode: 404,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Not Found: this route\'s upstream publishes no OAuth protected resource metadata'
  },
  MCPGW_ROUTE_NOT_FOUND: {
    statusCode: 404,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Not Found: no MCP route is configured at this path'
  },
  MCPGW_METHOD_NOT_ALLOWED: {
    statusCode: 405,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Method not allowed.'
  },
  MCPGW_ADMIN_SESSION_NOT_FOUND: {
    statusCode: 404,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'No live session with that id'
  },
  MCPGW_TOO_MANY_SESSIONS: {
    statusCode: 429,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Too Many Requests: this principal already holds the maximum number of live sessions (sessions.maxPerPrincipal)'
  },
  MCPGW_RATE_LIMITED: {
    statusCode: 429,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Too Many Requests: initialize rate limit exceeded (limits.initializePerMinute)'
  },
  MCPGW_MALFORMED_HTTP: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Bad Request: the request is not well-formed HTTP/1.1'
  },
  MCPGW_EXPECTATION_FAILED: {
    statusCode: 417,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Expectation Failed: the only expectation the gateway meets is Expect: 100-continue'
  },
  MCPGW_HEADERS_TOO_LARGE: {
    statusCode: 431,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Request Header Fields Too Large: the request\'s header section is over 16 KiB'
  },
  MCPGW_REQUEST_TIMEOUT: {
    statusCode: 408,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Request Timeout: the request did not arrive in time'
  },
  MCPGW_BODY_TOO_LARGE: {
    statusCode: 413,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Request body is larger than limits.maxBodyBytes'
  },
  MCPGW_INTERNAL_ERROR: {
    statusCode: 500,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Internal error in the gateway'
  },
  MCPGW_UPSTREAM_UNREACHABLE: {
    statusCode: 502,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Bad Gateway: the upstream MCP server could not be reached'
  },
  MCPGW_UPSTREAM_CALL_INTERRUPTED: {
    // In-band (HTTP 200): the session is fine and goes on; only this request's fate is unknown.
    statusCode: 200,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'The upstream instance failed while serving this request, which may or may not have run; the gateway did not send it again (routes[].retryToolCalls). The session goes on on another instance'
  },
  MCPGW_UPSTREAM_SESSION_LOST: {
    statusCode: 502,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Bad Gateway: the upstream instance forgot the session the gateway had just opened on it (404 at once), so the gateway opens no new one there for a while; retry later'
  },
  MCPGW_UPSTREAM_INVALID_RESPONSE: {
    statusCode: 502,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Bad Gateway: the upstream\'s answer is not one the gateway can read or bridge'
  },
  MCPGW_SESSION_STORE_UNAVAILABLE: {
    statusCode: 503,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Service Unavailable: the session store cannot be reached; retry later'
  },
  MCPGW_IDENTITY_PROVIDER_UNAVAILABLE: {
    statusCode: 503,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Service Unavailable: the keys to verify tokens (sessions.binding.jwt.jwksUrl) cannot be fetched; retry later'
  },
  MCPGW_INPUT_TIMEOUT: {
    statusCode: 408,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Request Timeout: the client did not answer the server\'s input requests within routes[].inputTimeout'
  },
  MCPGW_INPUT_REFUSED: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'The client answered one of the server\'s input requests with an error'
  },
  MCPGW_INPUT_ROUNDS_EXCEEDED: {
    statusCode: 502,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Bad Gateway: the upstream asked for client input more often than routes[].maxInputRounds allows'
  },
  MCPGW_UPSTREAM_TIMEOUT: {
    statusCode: 504,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Gateway Timeout: the upstream MCP server did not answer in time'
  },
  MCPGW_UPSTREAM_RESPONSE_TOO_LARGE: {
    statusCode: 502,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Bad Gateway: the upstream\'s answer (a JSON body or one SSE event) is larger than limits.maxResponseBytes'
  },
  MCPGW_JSON_TOO_DEEP: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Invalid Request: the body nests JSON deeper than the gateway accepts'
  },
  MCPGW_CLIENT_STATE_TOO_LARGE: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidParams,
    message: 'Invalid params: clientInfo and capabilities together are larger than limits.maxClientStateBytes'
  },
  MCPGW_LEGACY_ROUTE: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.UnsupportedProtocolVersion,
    message: 'Unsupported protocol version: this route serves the legacy (session) protocol versions only'
  },
  MCPGW_ABANDONED_STREAMS_EXCEEDED: {
    // An event on a stream whose status (200) is long sent: the status documents the cause.
    statusCode: 429,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'The gateway ended this call: too many calls of this session (or principal, or replica) run with no client reading them (streams.maxAbandonedPerSession, maxAbandonedPerPrincipal, maxAbandoned); the upstream was told it is cancelled'
  },
  MCPGW_RELAY_SHUT_DOWN: {
    statusCode: 503,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'The gateway replica relaying this call shut down before the upstream answered; the call may or may not have completed, and the upstream was told it is cancelled'
  },
  MCPGW_SHUTTING_DOWN: {
    statusCode: 503,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Service Unavailable: this gateway replica is shutting down; send the request again (another replica answers it)'
  },
  MCPGW_TERMINATION_UNACKNOWLEDGED: {
    statusCode: 503,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Service Unavailable: the session\'s end was not acknowledged by the Redis replicas (redis.waitForReplicas); retry'
  }
} as const satisfies Record<string, ErrorDefinition>

export type GatewayErrorCode = keyof typeof errorDefinitions

export interface GatewayErrorOptions {
  readonly cause?: unknown
  /** Appended to the message after a colon: what exactly was wrong. Never a secret. */
  readonly detail?: string
  /** JSON-RPC `error.data` (e.g. `{ supported, requested }` for an unsupported version). */
  readonly data?: unknown
  /** Response headers the error needs (e.g. `allow` on a 405). */
  readonly headers?: Readonly<Record<string, string>>
}

/** An error the gateway answers itself. Thrown or passed around; turned into a reply by `sendGatewayError`. */
export class GatewayError extends Error {
  readonly code: GatewayErrorCode
  readonly statusCode: number
  readonly jsonRpcCode: number
  readonly idPolicy: IdPolicy
  readonly data: unknown
  readonly headers: Readonly<Record<string, string>>
  readonly #options: GatewayErrorOptions

  constructor (code: GatewayErrorCode, options: GatewayErrorOptions = {}) {
    const definition: ErrorDefinition = errorDefinitions[code]
    super(options.detail === undefined ? definition.message : `${definition.message}: ${options.detail}`, { cause: options.cause })
    this.name = 'GatewayError'
    this.code = code
    this.statusCode = definition.statusCode
    this.jsonRpcCode = definition.jsonRpcCode
    this.idPolicy = definition.id ?? 'echo'
    this.data = options.data
    this.headers = options.headers ?? {}
    this.#options = options
  }

  /** The same error answered with other response headers (a challenge that names the resource, say). */
  withHeaders (headers: Readonly<Record<string, string>>): GatewayError {
    return new GatewayError(this.code, { ...this.#options, headers: { ...this.headers, ...headers } })
  }
}

/** JSON-RPC ids are strings or numbers; anything else (or nothing) becomes null in an error body. */
export type JsonRpcId = string | number | null

export interface JsonRpcErrorBody {
  jsonrpc: '2.0'
  id?: JsonRpcId
  error: { code: number, message: string, data?: unknown }
}

/** The error body for `error`, given the id of the request it answers (null when unknown). */
export function jsonRpcErrorBody (error: GatewayError, requestId: JsonRpcId = null): JsonRpcErrorBody {
  const details = { code: error.jsonRpcCode, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) }
  // Member order as the official SDK servers write it: jsonrpc, id, error.
  if (error.idPolicy === 'omit') return { jsonrpc: '2.0', error: details }
  return { jsonrpc: '2.0', id: error.idPolicy === 'echo' ? requestId : null, error: details }
}

/**
 * Configuration errors stop start-up; they never reach a client. The message names the exact path
 * of the offending key (`routes[1].upstream: ...`).
 */
export class ConfigError extends Error {
  readonly code = 'MCPGW_CONFIG_INVALID'

  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}
