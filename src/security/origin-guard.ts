import { localhostAllowedHostnames, localhostAllowedOrigins } from '@modelcontextprotocol/server'
import type { IncomingHttpHeaders } from 'node:http'
import type { SecurityConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import type { RequestAuthority } from './request-authority.js'

/*
 * DNS-rebinding defence (MCP 2025-11-25, Basic › Transports › Streamable HTTP › Security: servers
 * MUST validate Origin; a present, invalid Origin gets 403). Host is checked with the official
 * request's one parsed authority (request-authority.ts: a port-agnostic hostname allowlist, so a
forwarded host behind a trusted proxy is checked like Host). Origins are matched here, in the
 * three forms operators write them (docs/security.md): a full origin (scheme, host and port match
 * exactly), a bare hostname (any scheme and port) or `scheme://*`. Anything unparseable is refused,
 * the opaque `null` origin included. The same rules decide which origins get CORS answers.
 */

type OriginRule =
  | { readonly kind: 'origin', readonly origin: string }
  | { readonly kind: 'hostname', readonly hostname: string }
  | { readonly kind: 'scheme', readonly protocol: string }

export interface OriginPolicy {
  /** null: any Origin passes. */
  readonly allowedOrigins: readonly OriginRule[] | null
  /** null: any Host passes. Hostnames as URL serialises them (lower case, IPv6 in brackets). */
  readonly allowedHosts: readonly string[] | null
  /** Whether the operator configured the origins (CORS is on only then). */
  readonly originsConfigured: boolean
}

export function isLoopbackAddress (host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase()
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare)
}

const SCHEME_WILDCARD = /^([a-z][a-z0-9+.-]*:)\/\/\*$/

function originRule (entry: string): OriginRule {
  const scheme = SCHEME_WILDCARD.exec(entry)
  if (scheme !== null) return { kind: 'scheme', protocol: scheme[1] as string }
  if (entry.includes('://')) return { kind: 'origin', origin: new URL(entry).origin }
  return { kind: 'hostname', hostname: entry.toLowerCase() }
}

/**
 * What is allowed. With neither list configured, a gateway on a loopback address accepts only
 * localhost origins and hosts (a local gateway is exactly what DNS rebinding targets); on any other
 * address nothing is restricted until configured, because the names clients use are not known.
 */
export function resolveOriginPolicy (security: SecurityConfig, listenHost: string): OriginPolicy {
  if (security.allowedOrigins === null && security.allowedHosts === null && isLoopbackAddress(listenHost)) {
    return { allowedOrigins: localhostAllowedOrigins().map(originRule), allowedHosts: localhostAllowedHostnames(), originsConfigured: false }
  }
  return {
    allowedOrigins: security.allowedOrigins === null ? null : security.allowedOrigins.map(originRule),
    allowedHosts: security.allowedHosts === null ? null : security.allowedHosts.map((host) => new URL(`http://${host}`).hostname),
    originsConfigured: security.allowedOrigins !== null
  }
}

/** Whether an `Origin` header value is allowed by the rules (a request without one is not asked). */
export function isOriginAllowed (origin: string, rules: readonly OriginRule[]): boolean {
  if (!URL.canParse(origin)) return false
  const url = new URL(origin)
  // Browsers send a serialized origin: anything with a path, a query or odd spelling is not one.
  if (url.origin !== 'null' && url.origin !== origin) return false
  if (url.origin === 'null' && !rules.some((rule) => rule.kind === 'scheme' && rule.protocol === url.protocol)) return false
  return rules.some((rule) => {
    if (rule.kind === 'origin') return rule.origin === url.origin
    if (rule.kind === 'scheme') return rule.protocol === url.protocol
    return rule.hostname === url.hostname
  })
}

/**
 * Throws 403 when the request's host (its parsed authority) or its Origin is not allowed. A request
 * without Origin passes that check; `headers` undefined: the Origin is not asked (OAuth discovery).
 */
export function enforceOriginPolicy (authority: RequestAuthority, headers: IncomingHttpHeaders | undefined, policy: OriginPolicy): void {
  if (policy.allowedHosts !== null && !policy.allowedHosts.includes(authority.hostname)) {
    throw new GatewayError('MCPGW_HOST_NOT_ALLOWED', { detail: `Invalid Host: ${authority.hostname}` })
  }
  const origin = headers?.origin
  if (policy.allowedOrigins !== null && origin !== undefined && !isOriginAllowed(origin, policy.allowedOrigins)) {
    throw new GatewayError('MCPGW_ORIGIN_NOT_ALLOWED', { detail: `Origin ${JSON.stringify(origin.slice(0, 200))} is not allowed` })
  }
}
