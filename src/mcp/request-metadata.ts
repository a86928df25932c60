/*
 * The 2026-07-28 request metadata (streamable-http "Request Metadata"): the `_meta` keys a modern
 * request carries and the HTTP headers that mirror its body. Used both to check what modern clients
 * send (modern-request.ts) and to build what the era bridge sends (bridge/).
 */

export const CLIENT_INFO_META_KEY = 'io.modelcontextprotocol/clientInfo'
export const CLIENT_CAPABILITIES_META_KEY = 'io.modelcontextprotocol/clientCapabilities'
export const SERVER_INFO_META_KEY = 'io.modelcontextprotocol/serverInfo'
export const LOG_LEVEL_META_KEY = 'io.modelcontextprotocol/logLevel'
export const SUBSCRIPTION_ID_META_KEY = 'io.modelcontextprotocol/subscriptionId'

/** Which body field the `Mcp-Name` header mirrors, per method ("Standard Request Headers"; tasks per SEP-2663). */
const mcpNameSource: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId'
}

/** The field `Mcp-Name` mirrors for `method` and its string value in `params`; undefined when the method has none. */
export function mcpNameOf (method: string, params: unknown): { field: string, value: string | undefined } | undefined {
  const field = Object.hasOwn(mcpNameSource, method) ? mcpNameSource[method] as string : undefined
  if (field === undefined) return undefined
  const value = typeof params === 'object' && params !== null ? (params as Record<string, unknown>)[field] : undefined
  return { field, value: typeof value === 'string' ? value : undefined }
}

const base64Prefix = '=?base64?'
const base64Suffix = '?='
const canonicalBase64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function looksEncoded (value: string): boolean {
  return value.startsWith(base64Prefix) && value.endsWith(base64Suffix) && value.length >= base64Prefix.length + base64Suffix.length
}

/**
 * A value as a header ("Value Encoding"): plain when it is visible ASCII without edge spaces and not
 * itself shaped like the sentinel; `=?base64?...?=` of its UTF-8 otherwise.
 */
export function encodeHeaderValue (value: string): string {
  const plain = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(value) && !looksEncoded(value)
  return plain ? value : `${base64Prefix}${Buffer.from(value, 'utf8').toString('base64')}${base64Suffix}`
}

/** Decodes the `=?base64?...?=` form (case-sensitive markers); undefined when it is malformed. */
export function decodeHeaderValue (value: string): string | undefined {
  if (!looksEncoded(value)) return value
  const encoded = value.slice(base64Prefix.length, value.length - base64Suffix.length)
  if (!canonicalBase64.test(encoded)) return undefined
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(encoded, 'base64'))
  } catch {
    return undefined
  }
}
