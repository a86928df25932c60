/**
 * Every error a client or an operator can see, in one place (STYLE.md §1).
 *
 * Each entry has a stable code (MCPGW_*), the HTTP status it is answered with and the JSON-RPC
 * error code that goes into the body. The README's error table and test/errors.test.ts hold this
 * set as a contract: change one, change all three.
 */

/** JSON-RPC 2.0 error codes (jsonrpc.org/specification §5.1) and the MCP de-facto ones. */
export const JsonRpcErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  InternalError: -32603,
  /** Implementation-defined server error range; the SDKs use it for transport-level refusals. */
  ServerError: -32000,
  /** "Session not found": what the official SDKs answer with HTTP 404 (SPEC-NOTES, legacy rule 4). */
  SessionNotFound: -32001
} as const

interface ErrorDefinition {
  readonly statusCode: number
  readonly jsonRpcCode: number
  readonly message: string
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
  MCPGW_INITIALIZE_IN_BATCH: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Invalid Request: initialize must not be part of a JSON-RPC batch'
  },
  MCPGW_SESSION_ID_REQUIRED: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Bad Request: Mcp-Session-Id header is required'
  },
  MCPGW_ALREADY_INITIALIZED: {
    statusCode: 400,
    jsonRpcCode: JsonRpcErrorCode.InvalidRequest,
    message: 'Invalid Request: this session is already initialized; send initialize without Mcp-Session-Id to start a new one'
  },
  MCPGW_SESSION_NOT_FOUND: {
    statusCode: 404,
    jsonRpcCode: JsonRpcErrorCode.SessionNotFound,
    message: 'Session not found'
  },
  MCPGW_ROUTE_NOT_FOUND: {
    statusCode: 404,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Not Found: no MCP route is configured at this path'
  },
  MCPGW_METHOD_NOT_ALLOWED: {
    statusCode: 405,
    jsonRpcCode: JsonRpcErrorCode.ServerError,
    message: 'Method not allowed: use POST, GET or DELETE'
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
  MCPGW_SESSION_STORE_UNAVAILABLE: {
    statusCode: 503,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Service Unavailable: the session store cannot be reached; retry later'
  },
  MCPGW_UPSTREAM_TIMEOUT: {
    statusCode: 504,
    jsonRpcCode: JsonRpcErrorCode.InternalError,
    message: 'Gateway Timeout: the upstream MCP server did not answer in time'
  }
} as const satisfies Record<string, ErrorDefinition>

export type GatewayErrorCode = keyof typeof errorDefinitions

/** An error the gateway answers itself. Thrown or passed around; turned into a reply by `sendGatewayError`. */
export class GatewayError extends Error {
  readonly code: GatewayErrorCode
  readonly statusCode: number
  readonly jsonRpcCode: number

  constructor (code: GatewayErrorCode, options?: { cause?: unknown, detail?: string }) {
    const definition: ErrorDefinition = errorDefinitions[code]
    super(options?.detail === undefined ? definition.message : `${definition.message}: ${options.detail}`, { cause: options?.cause })
    this.name = 'GatewayError'
    this.code = code
    this.statusCode = definition.statusCode
    this.jsonRpcCode = definition.jsonRpcCode
  }
}

/** JSON-RPC ids are strings or numbers; anything else (or nothing) becomes null in an error body. */
export type JsonRpcId = string | number | null

export interface JsonRpcErrorBody {
  jsonrpc: '2.0'
  id: JsonRpcId
  error: { code: number, message: string }
}

export function jsonRpcErrorBody (error: GatewayError, id: JsonRpcId = null): JsonRpcErrorBody {
  return { jsonrpc: '2.0', id, error: { code: error.jsonRpcCode, message: error.message } }
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
