import { GatewayError } from '../errors.js'
import type { RequestAuthority } from '../security/request-authority.js'

/*
 * Where a route's OAuth Protected Resource Metadata lives (RFC 9728 §3.1: the well-known path is
 * inserted between the host and the resource's path), and how a Bearer challenge names it (RFC 9728
 * §5.1, MCP 2025-06-18 and later, Basic › Authorization). The resource is the URL clients use: the
 * gateway's public origin plus the route path, never the upstream's internal URL.
 */

export const RESOURCE_METADATA_PREFIX = '/.well-known/oauth-protected-resource'

/**
 * `listen.publicUrl`, else the origin the client used: the request's authority, parsed and checked
 * at the edge before anything else (security/request-authority.ts), so it never fails here.
 */
export function publicOrigin (authority: RequestAuthority | undefined, publicUrl: string | undefined): string {
  if (publicUrl !== undefined) return publicUrl
  if (authority === undefined) throw new GatewayError('MCPGW_INTERNAL_ERROR', { detail: 'the request\'s authority was not read at the edge' })
  return authority.origin
}

/**
 * The metadata path of a route: the well-known prefix, then the route's path without its trailing
 * slash (RFC 9728 §3.1; for route `/` the prefix alone), which is where clients look for it.
 */
export function resourceMetadataPath (routePath: string): string {
  return `${RESOURCE_METADATA_PREFIX}${routePath.replace(/\/+$/, '')}`
}

export function resourceMetadataUrl (origin: string, routePath: string): string {
  return `${origin}${resourceMetadataPath(routePath)}`
}

/**
 * The gateway's own Bearer challenge with the metadata URL first: `Bearer resource_metadata="…"`,
 * then the challenge's other parameters (`error="invalid_token"` when a token was refused).
 */
export function bearerChallenge (challenge: string, metadataUrl: string): string {
  const parameters = challenge.replace(/^Bearer\s*/i, '')
  return `Bearer resource_metadata="${metadataUrl}"${parameters === '' ? '' : `, ${parameters}`}`
}

/** An upstream's challenges (one header or several) with `resource_metadata` pointing at the gateway's document. */
export function withResourceMetadata<T extends string | string[]> (challenge: T, metadataUrl: string): T {
  const rewrite = (value: string): string => value.replace(/resource_metadata="[^"]*"/gi, `resource_metadata="${metadataUrl}"`)
  return (Array.isArray(challenge) ? challenge.map(rewrite) : rewrite(challenge)) as T
}
