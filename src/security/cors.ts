import type { FastifyCorsOptions } from '@fastify/cors'
import { isOriginAllowed, type OriginPolicy } from './origin-guard.js'

/*
 * CORS for browser clients (docs/security.md, "Browsers"), on only when `security.allowedOrigins` is
 * configured, for exactly those origins. A browser page can then run a session: its preflight is
 * answered 204, and it can read the session id the gateway mints (Access-Control-Expose-Headers).
 * Any other origin gets no CORS headers at all (and its POST still gets 403 from the origin check).
 */

/** Request headers an MCP client sends (MCP 2025-11-25 and 2026-07-28 transports, plus auth). */
const ALLOWED_REQUEST_HEADERS = ['content-type', 'authorization', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'mcp-method', 'mcp-name']
/** Response headers a browser client must be able to read. */
const EXPOSED_RESPONSE_HEADERS = ['Mcp-Session-Id', 'Mcp-Protocol-Version', 'WWW-Authenticate']
/** How long a browser may cache a preflight answer. */
const PREFLIGHT_MAX_AGE_SECONDS = 600

export function corsOptions (policy: OriginPolicy, credentials: boolean): FastifyCorsOptions {
  const rules = policy.allowedOrigins ?? []
  return {
    origin: (origin, callback) => { callback(null, origin !== undefined && isOriginAllowed(origin, rules)) },
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ALLOWED_REQUEST_HEADERS,
    exposedHeaders: EXPOSED_RESPONSE_HEADERS,
    credentials,
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
    optionsSuccessStatus: 204
  }
}
