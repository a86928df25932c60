import { GatewayError, type JsonRpcId } from '../errors.js'
import { MAX_JSON_DEPTH, nestsDeeperThan } from './json-depth.js'

/*
 * The gateway reads every POST body once: to reject what is not JSON-RPC at the edge (JSON-RPC
 * 2.0 §5: -32700 and -32600), to find `initialize`, and to name the JSON-RPC method in logs. The
 * bytes themselves are forwarded unchanged; nothing here re-serialises them.
 */

export interface JsonRpcRequest {
  readonly jsonrpc: '2.0'
  readonly id: string | number
  readonly method: string
  readonly params?: Record<string, unknown> | unknown[]
}

export interface JsonRpcNotification {
  readonly jsonrpc: '2.0'
  readonly method: string
  readonly params?: Record<string, unknown> | unknown[]
}

export interface JsonRpcResponse {
  readonly jsonrpc: '2.0'
  readonly id: JsonRpcId
  readonly result?: unknown
  readonly error?: { readonly code: number, readonly message: string, readonly data?: unknown }
}

export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse

export interface ClientPost {
  /** The parsed body as sent: one message or a batch array. */
  readonly body: unknown
  readonly messages: readonly JsonRpcMessage[]
  readonly isBatch: boolean
  /** Set when the body is exactly one `initialize` request. */
  readonly initialize: JsonRpcRequest | undefined
  /** Whether any message is an `initialize` request (inside a batch that is an error). */
  readonly containsInitialize: boolean
  /** For logs and metrics: the method of a single message, `batch`, or undefined for a response. */
  readonly rpcMethod: string | undefined
  /** The id to echo in an error about this request (a single request's id, else null). */
  readonly id: JsonRpcId
}

type JsonObject = Record<string, unknown>

/** A JSON object: not null, not an array. */
export function isJsonObject (value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The value of a JSON text, or undefined when it is not JSON (the caller decides what that means). */
export function parseJsonText (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function isRequestId (value: unknown): value is string | number {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))
}

function hasValidParams (message: JsonObject): boolean {
  return message.params === undefined || isJsonObject(message.params) || Array.isArray(message.params)
}

/** Shape check of one JSON-RPC 2.0 message (jsonrpc.org/specification §4, §5). */
export function isJsonRpcMessage (value: unknown): value is JsonRpcMessage {
  if (!isJsonObject(value) || value.jsonrpc !== '2.0') return false
  if (typeof value.method === 'string') {
    // Request or notification. MCP forbids a null id on requests (basic/index "Requests").
    return (value.id === undefined || isRequestId(value.id)) && hasValidParams(value)
  }
  if (!('id' in value) || !(value.id === null || isRequestId(value.id))) return false
  const hasResult = 'result' in value
  const hasError = 'error' in value
  if (hasResult === hasError) return false
  if (hasError) {
    const error = value.error
    return isJsonObject(error) && Number.isInteger(error.code) && typeof error.message === 'string'
  }
  return value.id !== null
}

export function isRequest (message: JsonRpcMessage): message is JsonRpcRequest {
  return 'method' in message && 'id' in message && message.id !== undefined
}

/** Parses and classifies a POST body; throws MCPGW_PARSE_ERROR or MCPGW_INVALID_REQUEST. */
export function parseClientPost (body: Buffer | string): ClientPost {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body
  // Before anything else: a body nested this deep is refused whether or not it parses.
  if (nestsDeeperThan(bytes, MAX_JSON_DEPTH)) throw new GatewayError('MCPGW_JSON_TOO_DEEP', { detail: `more than ${MAX_JSON_DEPTH} levels` })
  const parsed = parseJsonText(bytes.toString('utf8'))
  if (parsed === undefined) throw new GatewayError('MCPGW_PARSE_ERROR')
  const isBatch = Array.isArray(parsed)
  const messages: unknown[] = isBatch ? parsed as unknown[] : [parsed]
  if (messages.length === 0) throw new GatewayError('MCPGW_INVALID_REQUEST', { detail: 'empty batch' })
  messages.forEach((message, index) => {
    if (!isJsonRpcMessage(message)) {
      throw new GatewayError('MCPGW_INVALID_REQUEST', { detail: isBatch ? `batch element ${index} is not a JSON-RPC 2.0 message` : undefined })
    }
  })
  const valid = messages as JsonRpcMessage[]
  const initializeRequests = valid.filter((message) => isRequest(message) && message.method === 'initialize')
  const first = valid[0] as JsonRpcMessage
  return {
    body: parsed,
    messages: valid,
    isBatch,
    initialize: !isBatch && initializeRequests.length === 1 ? initializeRequests[0] as JsonRpcRequest : undefined,
    containsInitialize: initializeRequests.length > 0,
    rpcMethod: isBatch ? 'batch' : ('method' in first ? first.method : undefined),
    id: !isBatch && isRequest(first) ? first.id : null
  }
}
