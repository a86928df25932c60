import { classifyInboundRequest, type InboundLadderRejection } from '@modelcontextprotocol/server'
import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '../errors.js'
import type { ClientPost } from './json-rpc.js'
import { isSupportedModernVersion, MODERN_PROTOCOL_VERSIONS, namesModernEra, PROTOCOL_VERSION_META_KEY } from './protocol-versions.js'
import { decodeHeaderValue, mcpNameOf } from './request-metadata.js'

/*
 * Era of one POST (docs/era-bridge.md, "The modern era on one endpoint"; 2026-07-28 streamable-http "Request
 * Metadata" and "Server Validation").
 *
 * Most traffic is legacy, and the official classifier (`classifyInboundRequest` from
 * @modelcontextprotocol/server) costs about 5 µs a call, eight times a JSON.parse of the body. So it
 * only runs when a request carries a modern signal: an `MCP-Protocol-Version` naming 2026-07-28 or
 * later, or a `_meta` protocol-version claim in the body. Everything else is legacy without asking.
 * The SDK does not export its standard-header check (`Mcp-Method`/`Mcp-Name` presence and Base64
 * decoding), so that part is ours, below.
 */

export type PostEra =
  | { readonly era: 'legacy' }
  | { readonly era: 'modern', readonly protocolVersion: string }

function header (headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return typeof value === 'string' ? value : undefined
}

function hasEnvelopeClaim (message: unknown): boolean {
  const params = (message as { params?: unknown }).params
  if (typeof params !== 'object' || params === null) return false
  const meta = (params as { _meta?: unknown })._meta
  return typeof meta === 'object' && meta !== null && PROTOCOL_VERSION_META_KEY in meta
}

/** The classifier's ladder rejection as one of our coded errors, keeping its precise message. */
function fromLadderRejection (rejection: InboundLadderRejection): GatewayError {
  const detail = rejection.message
  const data = rejection.data
  switch (rejection.code) {
    case -32020: return new GatewayError('MCPGW_HEADER_MISMATCH', { detail, data })
    case -32022: return new GatewayError('MCPGW_MODERN_VERSION_UNSUPPORTED', { detail, data })
    case -32602: return new GatewayError('MCPGW_INVALID_ENVELOPE', { detail, data })
    default: return new GatewayError('MCPGW_INVALID_REQUEST', { detail, data })
  }
}

function mismatch (detail: string): GatewayError {
  return new GatewayError('MCPGW_HEADER_MISMATCH', { detail })
}

/** Presence and agreement of `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` on a modern request. */
function checkStandardHeaders (message: { method: string, params?: unknown }, headers: IncomingHttpHeaders): void {
  if (header(headers, 'mcp-protocol-version') === undefined) throw mismatch('the MCP-Protocol-Version header is required')
  if (header(headers, 'mcp-method') === undefined) throw mismatch(`the Mcp-Method header is required (body method ${message.method})`)
  const source = mcpNameOf(message.method, message.params)
  if (source === undefined || source.value === undefined) return
  const { field, value: bodyValue } = source
  const nameHeader = header(headers, 'mcp-name')
  if (nameHeader === undefined) throw mismatch(`the Mcp-Name header is required: the body carries params.${field}`)
  const decoded = decodeHeaderValue(nameHeader)
  if (decoded === undefined) throw mismatch('the Mcp-Name header carries an invalid Base64 value')
  if (decoded !== bodyValue) throw mismatch(`the Mcp-Name header does not match params.${field} in the body`)
}

/**
 * Decides the era of a POST and, for a modern one, enforces every edge rule: the classifier's ladder
 * (header/body cross-checks, envelope), a supported version (-32022 listing ours), standard headers.
 * Throws a GatewayError (400) for anything the spec says to reject.
 */
export function classifyPost (post: ClientPost, headers: IncomingHttpHeaders): PostEra {
  const versionHeader = header(headers, 'mcp-protocol-version')
  if (!namesModernEra(versionHeader) && !post.messages.some(hasEnvelopeClaim)) return { era: 'legacy' }

  const outcome = classifyInboundRequest({
    httpMethod: 'POST',
    body: post.body,
    ...(versionHeader === undefined ? {} : { protocolVersionHeader: versionHeader }),
    ...(header(headers, 'mcp-method') === undefined ? {} : { mcpMethodHeader: header(headers, 'mcp-method') }),
    ...(header(headers, 'mcp-name') === undefined ? {} : { mcpNameHeader: header(headers, 'mcp-name') })
  })
  if (outcome.kind === 'reject') throw fromLadderRejection(outcome)
  if (outcome.kind === 'legacy') return { era: 'legacy' }

  const requested = outcome.classification.revision ?? versionHeader
  if (requested === undefined || !isSupportedModernVersion(requested)) {
    throw new GatewayError('MCPGW_MODERN_VERSION_UNSUPPORTED', {
      detail: requested === undefined ? 'the request names no protocol version' : `${requested} (supported: ${MODERN_PROTOCOL_VERSIONS.join(', ')})`,
      data: { supported: [...MODERN_PROTOCOL_VERSIONS], ...(requested === undefined ? {} : { requested }) }
    })
  }
  // Notifications are exempt: the header table reads "All requests".
  if (outcome.messageKind === 'request') checkStandardHeaders(outcome.message, headers)
  return { era: 'modern', protocolVersion: requested }
}

/** GET and DELETE exist only in the legacy era; a modern client sending them gets 405 (2026-07-28 "Backward Compatibility"). */
export function namesModernVersion (headers: IncomingHttpHeaders): boolean {
  return namesModernEra(header(headers, 'mcp-protocol-version'))
}
