import { localhostAllowedHostnames, localhostAllowedOrigins, validateHostHeader, validateOriginHeader } from '@modelcontextprotocol/server'
import type { IncomingHttpHeaders } from 'node:http'
import type { SecurityConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'

/*
 * DNS-rebinding defence (streamable-http "Security": servers MUST validate Origin; a present,
 * invalid Origin gets 403). The checks themselves are the official SDK's (`validateOriginHeader`,
 * `validateHostHeader`: port-agnostic hostname allowlists, deny on anything unparseable, including
 * the opaque `null` origin); this module decides which lists apply.
 */

export interface OriginPolicy {
  /** null: any Origin passes. */
  readonly allowedOrigins: string[] | null
  /** null: any Host passes. */
  readonly allowedHosts: string[] | null
}

export function isLoopbackAddress (host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase()
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare)
}

/**
 * What is allowed. With neither list configured, a gateway on a loopback address accepts only
 * localhost origins and hosts (a local gateway is exactly what DNS rebinding targets); on any other
 * address nothing is restricted until configured, because the names clients use are not known.
 */
export function resolveOriginPolicy (security: SecurityConfig, listenHost: string): OriginPolicy {
  if (security.allowedOrigins === null && security.allowedHosts === null && isLoopbackAddress(listenHost)) {
    return { allowedOrigins: localhostAllowedOrigins(), allowedHosts: localhostAllowedHostnames() }
  }
  return {
    allowedOrigins: security.allowedOrigins === null ? null : [...security.allowedOrigins],
    allowedHosts: security.allowedHosts === null ? null : [...security.allowedHosts]
  }
}

/** Throws 403 when the request's Origin or Host is not allowed. A request without Origin passes that check. */
export function enforceOriginPolicy (headers: IncomingHttpHeaders, policy: OriginPolicy): void {
  if (policy.allowedHosts !== null) {
    const result = validateHostHeader(headers.host, policy.allowedHosts)
    if (!result.ok) throw new GatewayError('MCPGW_HOST_NOT_ALLOWED', { detail: result.message })
  }
  if (policy.allowedOrigins !== null) {
    const result = validateOriginHeader(headers.origin, policy.allowedOrigins)
    if (!result.ok) throw new GatewayError('MCPGW_ORIGIN_NOT_ALLOWED', { detail: result.message })
  }
}
