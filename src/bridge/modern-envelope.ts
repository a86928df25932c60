import type { JsonRpcNotification, JsonRpcRequest } from '../mcp/json-rpc.js'
import { isJsonObject } from '../mcp/json-rpc.js'
import { MODERN_PROTOCOL_VERSIONS, PROTOCOL_VERSION_META_KEY } from '../mcp/protocol-versions.js'
import { CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, encodeHeaderValue, LOG_LEVEL_META_KEY, mcpNameOf, SERVER_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY } from '../mcp/request-metadata.js'

/*
 * A legacy request as a 2026-07-28 upstream expects it (docs/era-bridge.md). The modern era has no
 * initialize and no session: every request carries the client's identity itself, in
 * `params._meta` (protocol version, client info and capabilities, the log level the client set),
 * and mirrors its method and name in headers (2026-07-28, Basic › Transports › Streamable HTTP).
 * The gateway holds all of that in the session and adds it to every request it bridges.
 */

export const MODERN_VERSION = MODERN_PROTOCOL_VERSIONS[0]

/** What the session knows of the client, sent along with every bridged request. */
export interface ClientIdentity {
  readonly clientInfo: unknown
  readonly clientCapabilities: unknown
  /** From the client's `logging/setLevel`, answered by the gateway; undefined: never set. */
  readonly logLevel?: string | undefined
}

/** A bridged request, ready to POST: its body and the modern headers it needs. */
export interface ModernRequest {
  readonly body: string
  readonly headers: Record<string, string>
}

/** The modern headers every bridged POST carries. */
function modernHeaders (method: string, params: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': method }
  const name = mcpNameOf(method, params)?.value
  if (name !== undefined) headers['mcp-name'] = encodeHeaderValue(name)
  return headers
}

/**
 * A legacy client's capabilities as a modern server reads them. `elicitation: {}` meant form mode
 * until 2025-11-25 (which keeps that reading "for backwards compatibility"); 2026-07-28 servers
 * check for `elicitation.form` itself.
 */
export function modernClientCapabilities (capabilities: unknown): Record<string, unknown> {
  if (!isJsonObject(capabilities)) return {}
  const { elicitation, ...rest } = capabilities
  if (typeof elicitation !== 'object' || elicitation === null) return capabilities
  const modes = elicitation as Record<string, unknown>
  return { ...rest, elicitation: modes.form === undefined && modes.url === undefined ? { ...modes, form: {} } : modes }
}

function envelope (identity: ClientIdentity): Record<string, unknown> {
  return {
    [PROTOCOL_VERSION_META_KEY]: MODERN_VERSION,
    [CLIENT_INFO_META_KEY]: identity.clientInfo ?? {},
    [CLIENT_CAPABILITIES_META_KEY]: modernClientCapabilities(identity.clientCapabilities),
    ...(identity.logLevel === undefined ? {} : { [LOG_LEVEL_META_KEY]: identity.logLevel })
  }
}

/** A legacy request or notification as the modern upstream expects it. */
export function toModernRequest (message: JsonRpcRequest | JsonRpcNotification, identity: ClientIdentity): ModernRequest {
  const params = isJsonObject(message.params) ? message.params : {}
  const meta = typeof params._meta === 'object' && params._meta !== null ? params._meta as Record<string, unknown> : {}
  const body = { ...message, params: { ...params, _meta: { ...meta, ...envelope(identity) } } }
  return { body: JSON.stringify(body), headers: modernHeaders(message.method, params) }
}

/** The `_meta` keys of the 2026-07-28 envelope: they mean nothing to a legacy client. */
const MODERN_META_KEYS = [PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY, SERVER_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY]

/**
 * A result or notification params object as a legacy client expects it: without the modern
 * envelope's `_meta` keys (the server's stamp `io.modelcontextprotocol/serverInfo`, say), keeping
 * the server's own `_meta` keys; `_meta` goes when nothing is left in it.
 */
export function withoutModernMeta (value: Record<string, unknown>): Record<string, unknown> {
  if (!isJsonObject(value._meta)) return value
  const meta: Record<string, unknown> = { ...value._meta }
  let changed = false
  for (const key of MODERN_META_KEYS) {
    if (key in meta) {
      delete meta[key]
      changed = true
    }
  }
  if (!changed) return value
  const { _meta: _modern, ...rest } = value
  return Object.keys(meta).length > 0 ? { ...rest, _meta: meta } : rest
}
