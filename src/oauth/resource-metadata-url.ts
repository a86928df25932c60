import type { FastifyRequest } from 'fastify'

/*
 * Where a route's OAuth Protected Resource Metadata lives (RFC 9728 §3.1: the well-known path is
 * inserted between the host and the resource's path), and how a Bearer challenge names it (RFC 9728
 * §5.1, MCP 2025-06-18 and later, Basic › Authorization). The resource is the URL clients use: the
 * gateway's public origin plus the route path, never the upstream's internal URL.
 */

export const RESOURCE_METADATA_PREFIX = '/.well-known/oauth-protected-resource'

/** `listen.publicUrl`, else the request's own scheme and host (forwarded ones only behind trustProxy). */
export function publicOrigin (request: Pick<FastifyRequest, 'protocol' | 'host'>, publicUrl: string | undefined): string {
  return publicUrl ?? `${request.protocol}://${request.host}`
}

export function resourceMetadataUrl (origin: string, routePath: string): string {
  return `${origin}${RESOURCE_METADATA_PREFIX}${routePath}`
}

/**
 * The gateway's own Bearer challenge with the metadata URL first: `Bearer resource_metadata="…"`,
 * then the challenge's other parameters (`error="invalid_token"` when a token was refused).
 */
export function bearerChallenge (challenge: string, metadataUrl: string): string {
  const parameters = challenge.replace(/^Bearer\s*/i, '')
  return `Bearer resource_metadata="${metadataUrl}"${parameters === '' ? '' : `, ${parameters}`}`
}

/** An upstream's challenge with its `resource_metadata` pointing at the gateway's document instead. */
export function withResourceMetadata (challenge: string, metadataUrl: string): string {
  return challenge.replace(/resource_metadata="[^"]*"/gi, `resource_metadata="${metadataUrl}"`)
}
