import type { FastifyCorsOptions } from '@fastify/cors'
import type { FastifyRequest } from 'fastify'
import { enforceOriginPolicy, isOriginAllowed, type OriginPolicy } from './origin-guard.js'
import { authorityOf } from './request-authority.js'

/*
 * CORS for browser clients (docs/security.md, "Browsers"), on only when `security.allowedOrigins` is
 * configured, for exactly those origins. A browser page can then run a session: its preflight is
 * answered 204, and it can read the session id the gateway mints (Access-Control-Expose-Headers).
 * Any other origin gets no CORS headers at all (and its POST still gets 403 from the origin check).
 */

/** Request headers an MCP client sends (MCP 2025-11-25 and 2026-07-28 transports, plus auth). */
const ALLOWED_REQUEST_HEADERS = ['content-type', 'authorization', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'mcp-method', 'mcp-name']
/** 2026-07-28 mirrors tool parameters a tool declares in `Mcp-Param-<Name>` headers: allowed as asked. */
const PARAMETER_HEADER_PREFIX = 'mcp-param-'
/** Response headers a browser client must be able to read. */
const EXPOSED_RESPONSE_HEADERS = ['Mcp-Session-Id', 'Mcp-Protocol-Version', 'WWW-Authenticate', 'Retry-After']
/** How long a browser may cache a preflight answer. */
const PREFLIGHT_MAX_AGE_SECONDS = 600

/**
 * CORS options per request: on for the MCP endpoints and their OAuth metadata only (not /metrics,
 * the health endpoints or the admin API), for the allowed origins only.
 */
export function corsOptions (policy: OriginPolicy, credentials: boolean, paths: ReadonlySet<string>): FastifyCorsOptions {
  const rules = policy.allowedOrigins ?? []
  const options: FastifyCorsOptions = {
    origin: (origin, callback) => { callback(null, origin !== undefined && isOriginAllowed(origin, rules)) },
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ALLOWED_REQUEST_HEADERS,
    exposedHeaders: EXPOSED_RESPONSE_HEADERS,
    credentials,
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
    optionsSuccessStatus: 204,
    // An allowed origin's OPTIONS without Access-Control-Request-Method is answered as a preflight
    // too, rather than with the plugin's plain-text 400 (every refusal is a coded error).
    strictPreflight: false
  }
  const off: FastifyCorsOptions = { origin: false }
  return {
    delegator: (request, callback) => {
      // A host the gateway refuses gets no CORS answer either: the route refuses it (400 or 403).
      if (!paths.has(request.url.split('?')[0] ?? '') || !hostAccepted(request as FastifyRequest, policy)) {
        callback(null, off)
        return
      }
      const asked = request.headers['access-control-request-headers']
      const parameters = typeof asked === 'string'
        ? asked.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name.startsWith(PARAMETER_HEADER_PREFIX) && /^[a-z0-9-]+$/.test(name))
        : []
      callback(null, parameters.length === 0 ? options : { ...options, allowedHeaders: [...ALLOWED_REQUEST_HEADERS, ...parameters] })
    }
  }
}

/** Whether the request's authority is usable and its host allowed (the checks every route makes first). */
function hostAccepted (request: FastifyRequest, policy: OriginPolicy): boolean {
  try {
    enforceOriginPolicy(authorityOf(request), undefined, policy)
    return true
  } catch {
    return false
  }
}
