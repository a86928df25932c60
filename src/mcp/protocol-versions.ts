/*
 * The protocol revisions the gateway knows, by era (docs/era-bridge.md, "The modern era on one endpoint").
 * Revision identifiers are ISO dates: they order lexicographically.
 */

/** Legacy (initialize + session) revisions over Streamable HTTP, newest first. 2024-11-05 is
 * included because the official SDKs still negotiate it when a client asks for it. */
export const LEGACY_PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const

/** Stateless, per-request-metadata revisions. */
export const MODERN_PROTOCOL_VERSIONS = ['2026-07-28'] as const

export const FIRST_MODERN_PROTOCOL_VERSION = '2026-07-28'

/** "Missing MCP-Protocol-Version: assume 2025-03-26" (2025-06-18 transports, "Protocol Version Header"). */
export const DEFAULT_LEGACY_PROTOCOL_VERSION = '2025-03-26'

/** JSON-RPC batches exist in 2025-03-26 only; 2025-06-18 removed them. */
export const BATCH_PROTOCOL_VERSIONS: readonly string[] = ['2025-03-26']

/** The `_meta` key carrying a modern request's protocol version. */
export const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion'

const versionShape = /^\d{4}-\d{2}-\d{2}$/

/** A well-formed revision identifier naming the modern era (it need not be one we support). */
export function namesModernEra (version: string | undefined): boolean {
  return version !== undefined && versionShape.test(version) && version >= FIRST_MODERN_PROTOCOL_VERSION
}

export function isSupportedLegacyVersion (version: string): boolean {
  return (LEGACY_PROTOCOL_VERSIONS as readonly string[]).includes(version)
}

export function isSupportedModernVersion (version: string): boolean {
  return (MODERN_PROTOCOL_VERSIONS as readonly string[]).includes(version)
}
