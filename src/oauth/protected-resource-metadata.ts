import type { FastifyInstance } from 'fastify'
import type { GatewayConfig, RouteConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import { isJsonObject, parseJsonText } from '../mcp/json-rpc.js'
import type { UpstreamClient } from '../upstream/upstream-client.js'
import { readUpstreamBody } from '../upstream/upstream-messages.js'
import { publicOrigin, RESOURCE_METADATA_PREFIX } from './resource-metadata-url.js'

/*
 * `GET /.well-known/oauth-protected-resource<route path>` (RFC 9728), so that OAuth clients find
 * the authorization server of the resource they connect to: the gateway's route URL.
 *   - With a JWT binding the gateway is the protected resource: the document names
 *     `sessions.binding.jwt.authorizationServers` (default: the issuer).
 *   - Otherwise the upstream is: its own document (path-aware first, then the root, RFC 9728
 *     §3.1) is served with `resource` rewritten to the gateway's route URL, cached briefly. Clients
 *     reject a document whose `resource` differs from the URL they connected to.
 * Registered beside the MCP route, outside its hooks: discovery needs no token and no Origin.
 */

export interface ProtectedResourceMetadataOptions {
  readonly route: RouteConfig
  readonly upstream: UpstreamClient
  readonly binding: GatewayConfig['sessions']['binding']
  readonly publicUrl: string | undefined
}

/** How long an upstream's document is reused. */
const UPSTREAM_DOCUMENT_CACHE_MS = 60_000
/** How long fetching it may take. */
const UPSTREAM_DOCUMENT_TIMEOUT_MS = 5_000

export async function protectedResourceMetadata (fastify: FastifyInstance, options: ProtectedResourceMetadataOptions): Promise<void> {
  const { route, upstream, binding } = options
  let cached: { readonly document: Record<string, unknown> | undefined, readonly until: number } | undefined

  async function upstreamDocument (): Promise<Record<string, unknown> | undefined> {
    if (cached !== undefined && cached.until > Date.now()) return cached.document
    const upstreamPath = new URL(route.upstream).pathname.replace(/\/$/, '')
    let document: Record<string, unknown> | undefined
    for (const path of [...(upstreamPath === '' ? [] : [`${RESOURCE_METADATA_PREFIX}${upstreamPath}`]), RESOURCE_METADATA_PREFIX]) {
      const answer = await upstream.get(path, AbortSignal.timeout(UPSTREAM_DOCUMENT_TIMEOUT_MS))
      const text = await readUpstreamBody(answer.body, upstream.maxResponseBytes)
      const parsed = answer.statusCode === 200 ? parseJsonText(text) : undefined
      if (isJsonObject(parsed)) {
        document = parsed
        break
      }
    }
    cached = { document, until: Date.now() + UPSTREAM_DOCUMENT_CACHE_MS }
    return document
  }

  fastify.get(`${RESOURCE_METADATA_PREFIX}${route.path}`, async function serveProtectedResourceMetadata (request, reply) {
    const resource = `${publicOrigin(request, options.publicUrl)}${route.path}`
    if (binding.kind === 'jwt') {
      return await reply.header('cache-control', 'max-age=300').send({
        resource,
        authorization_servers: binding.authorizationServers,
        ...(binding.scopesSupported === undefined ? {} : { scopes_supported: binding.scopesSupported }),
        bearer_methods_supported: ['header']
      })
    }
    let document: Record<string, unknown> | undefined
    try {
      document = await upstreamDocument()
    } catch (error) {
      throw new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { cause: error, detail: 'its protected resource metadata could not be fetched' })
    }
    if (document === undefined) throw new GatewayError('MCPGW_ROUTE_NOT_FOUND', { detail: 'this route\'s upstream publishes no protected resource metadata' })
    return await reply.header('cache-control', 'max-age=60').send({ ...document, resource })
  })
}
