import type { FastifyRequest } from 'fastify'
import { GatewayError } from '../errors.js'
import { isJsonObject, type ClientPost, type JsonRpcRequest } from '../mcp/json-rpc.js'
import { namesModernVersion } from '../mcp/modern-request.js'
import { BATCH_PROTOCOL_VERSIONS, DEFAULT_LEGACY_PROTOCOL_VERSION, isSupportedLegacyVersion, LEGACY_PROTOCOL_VERSIONS } from '../mcp/protocol-versions.js'
import { isWellFormedSessionId } from '../sessions/session-id.js'
import type { LiveSession, SessionStore } from '../sessions/session-store.js'
import { SESSION_HEADER } from '../upstream/upstream-headers.js'

/*
 * The legacy session rules answered at the edge (MCP 2025-11-25, Basic › Transports › Session
 * Management; docs/architecture.md): 400 without a session id, 404 for one that is not live, the
 * protocol version header, batches only where the session's version has them.
 */

const RATE_LIMIT_WINDOW_MS = 60_000

export function readSessionHeader (request: FastifyRequest): string | undefined {
  const value = request.headers[SESSION_HEADER]
  // Node joins repeated headers with ", "; such a value is not one of our ids and fails the shape check.
  return typeof value === 'string' ? value : undefined
}

/** The id a GET or DELETE must carry: 400 without one. Recorded for the request log. */
export function requireSessionHeader (request: FastifyRequest): string {
  const sessionId = readSessionHeader(request)
  if (sessionId === undefined) throw new GatewayError('MCPGW_SESSION_ID_REQUIRED')
  request.mcp.sessionId = sessionId
  return sessionId
}

/** Whether MCP-Protocol-Version names a legacy version the gateway speaks (missing: 2025-03-26). */
export function hasSupportedLegacyVersion (request: FastifyRequest): boolean {
  const version = request.headers['mcp-protocol-version'] ?? DEFAULT_LEGACY_PROTOCOL_VERSION
  return typeof version === 'string' && isSupportedLegacyVersion(version)
}

/**
 * MCP-Protocol-Version on a legacy session request (2025-06-18 transports): missing means
 * 2025-03-26; anything we do not know, or that is not a version at all, is a 400.
 */
export function checkLegacyVersionHeader (request: FastifyRequest): void {
  if (!hasSupportedLegacyVersion(request)) {
    const version = request.headers['mcp-protocol-version']
    throw new GatewayError('MCPGW_PROTOCOL_VERSION_UNSUPPORTED', {
      detail: `${JSON.stringify(version)} (supported: ${LEGACY_PROTOCOL_VERSIONS.join(', ')})`
    })
  }
}

/** 2025-03-26 allowed batches; 2025-06-18 removed them. The session's negotiated version decides. */
export function checkBatchAllowed (post: ClientPost, session: LiveSession): void {
  if (post.isBatch && !BATCH_PROTOCOL_VERSIONS.includes(session.protocolVersion)) {
    throw new GatewayError('MCPGW_BATCH_NOT_SUPPORTED', { detail: `this session negotiated ${session.protocolVersion}` })
  }
}

/** GET and DELETE are legacy-era operations: with a modern version and no session, 405. */
export function refuseModernSessionlessCall (request: FastifyRequest): void {
  if (namesModernVersion(request.headers) && readSessionHeader(request) === undefined) {
    throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: { allow: 'POST' } })
  }
}

/**
 * 400 without an id, 404 for an id that is not live on this route for this principal; slides the
 * idle timeout, in the store's one round trip. Then the protocol version header: the session check
 * always comes first. `withClient` also reads what a bridged request needs of the client.
 */
export async function requireLiveSession (store: SessionStore, routePath: string, request: FastifyRequest, withClient: boolean): Promise<LiveSession> {
  const sessionId = requireSessionHeader(request)
  const session = isWellFormedSessionId(sessionId) ? await store.touch(sessionId, request.mcp.principal, withClient ? { withClient } : undefined) : null
  if (session === null || session.route !== routePath) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
  checkLegacyVersionHeader(request)
  return session
}

/**
 * What a session keeps of its client (`clientInfo`, `capabilities`) is bounded
 * (limits.maxClientStateBytes): an initialize carrying more is refused before anything is
 * forwarded or minted.
 */
export function checkClientStateSize (initialize: JsonRpcRequest, maxBytes: number): void {
  const params = isJsonObject(initialize.params) ? initialize.params : {}
  const bytes = Buffer.byteLength(JSON.stringify(params.clientInfo ?? null)) + Buffer.byteLength(JSON.stringify(params.capabilities ?? null))
  if (bytes > maxBytes) throw new GatewayError('MCPGW_CLIENT_STATE_TOO_LARGE', { detail: `${bytes} bytes (at most ${maxBytes})` })
}

/**
 * limits.initializePerMinute (0: unlimited), counted in the store so that every replica shares the
 * count: per client address always, and per principal too when sessions are bound. With a header
 * binding the principal is a value the client chooses, so the address is what a client cannot
 * dodge (docs/security.md, "Limits").
 */
export async function enforceInitializeRate (store: SessionStore, perMinute: number, request: FastifyRequest): Promise<void> {
  if (perMinute === 0) return
  const keys = [`address:${request.ip}`, ...(request.mcp.principal === undefined ? [] : [request.mcp.principal])]
  for (const key of keys) {
    const { allowed, resetInMs } = await store.consumeRateLimit(`initialize:${key}`, perMinute, RATE_LIMIT_WINDOW_MS)
    if (!allowed) throw new GatewayError('MCPGW_RATE_LIMITED', { headers: { 'retry-after': String(Math.max(1, Math.ceil(resetInMs / 1000))) } })
  }
}
