import type { FastifyInstance } from 'fastify'
import type { GatewayConfig, RouteConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import { isJsonObject, parseJsonText } from '../mcp/json-rpc.js'
import type { UpstreamClient } from '../upstream/upstream-client.js'
import { readUpstreamBody } from '../upstream/upstream-messages.js'
import { enforceOriginPolicy, type OriginPolicy } from '../security/origin-guard.js'
import { authorityOf } from '../security/request-authority.js'
import { upstreamFailure } from '../upstream/upstream-failure.js'
import { publicOrigin, RESOURCE_METADATA_PREFIX, resourceMetadataPath } from './resource-metadata-url.js'

/*
 * `GET /.well-known/oauth-protected-resource<route path>` (RFC 9728), so that OAuth clients find
 * the authorization server of the resource they connect to: the gateway's route URL.
 *   - With a JWT binding the gateway is the protected resource: the document names
 *     `sessions.binding.jwt.authorizationServers` (default: the issuer).
 *   - Otherwise the upstream is: its own document (path-aware first, then the root, RFC 9728
 *     §3.1) is served with `resource` rewritten to the gateway's route URL, cached briefly (a
 *     failure too, and concurrent requests share one fetch). Clients
 *     reject a document whose `resource` differs from the URL they connected to.
 * Registered beside the MCP route, outside its hooks: discovery needs no token and no Origin.
 */

export interface ProtectedResourceMetadataOptions {
  readonly route: RouteConfig
  /**
   * Where the upstream's document may be fetched, in the order to try: the route's one upstream, or
   * a stateful route's instances, healthy ones first in list order (one healthy instance is enough).
   */
  readonly upstreams: () => readonly UpstreamClient[]
  readonly binding: GatewayConfig['sessions']['binding']
  readonly publicUrl: string | undefined
  /** The Host allowlist applies here too: a document naming a host the gateway does not serve is never made. */
  readonly originPolicy: OriginPolicy
}

/** How long an upstream's document (or its absence) is reused. */
const UPSTREAM_DOCUMENT_CACHE_MS = 60_000
/** How long a failure to fetch it is remembered: the path needs no token, so it must not multiply load. */
const UPSTREAM_FAILURE_CACHE_MS = 10_000
/** How long fetching one document may take. */
const UPSTREAM_DOCUMENT_TIMEOUT_MS = 5_000

type Fetched = { readonly document: Record<string, unknown> | undefined } | { readonly failure: GatewayError }

export async function protectedResourceMetadata (fastify: FastifyInstance, options: ProtectedResourceMetadataOptions): Promise<void> {
  const { route, binding } = options
  let cached: { readonly fetched: Promise<Fetched>, until: number } | undefined

  /** One document: the parsed JSON object of a 200, or undefined; throws on a failure to fetch. */
  async function fetchDocument (upstream: UpstreamClient, path: string): Promise<Record<string, unknown> | undefined> {
    const answer = await upstream.get(path, AbortSignal.timeout(UPSTREAM_DOCUMENT_TIMEOUT_MS))
    const text = await readUpstreamBody(answer.body, upstream.maxResponseBytes)
    const parsed = answer.statusCode === 200 ? parseJsonText(text) : undefined
    return isJsonObject(parsed) ? parsed : undefined
  }

  /**
   * Path-aware first, then the root (RFC 9728 §3.1); a failure of the first still tries the second.
   * An upstream that cannot be reached (or does not answer in time) leaves it to the next one at
   * once; one that answers decides.
   */
  async function fetchUpstreamDocument (): Promise<Fetched> {
    let failure: GatewayError | undefined
    const upstreams = options.upstreams()
    for (const [index, upstream] of upstreams.entries()) {
      const upstreamPath = new URL(upstream.path, upstream.origin).pathname.replace(/\/+$/, '')
      let answered = false
      for (const path of [...(upstreamPath === '' ? [] : [`${RESOURCE_METADATA_PREFIX}${upstreamPath}`]), RESOURCE_METADATA_PREFIX]) {
        try {
          const document = await fetchDocument(upstream, path)
          if (document !== undefined) return { document }
          answered = true
        } catch (error) {
          failure = upstreamFailure(error)
          if (index < upstreams.length - 1) break
        }
      }
      if (answered) return { document: undefined }
    }
    return failure === undefined ? { document: undefined } : { failure }
  }

  /** Concurrent requests share one fetch; its result is kept a minute, a failure ten seconds. */
  async function upstreamDocument (): Promise<Fetched> {
    if (cached !== undefined && cached.until > Date.now()) return await cached.fetched
    const entry = { fetched: fetchUpstreamDocument(), until: Number.POSITIVE_INFINITY }
    cached = entry
    const fetched = await entry.fetched
    entry.until = Date.now() + ('failure' in fetched ? UPSTREAM_FAILURE_CACHE_MS : UPSTREAM_DOCUMENT_CACHE_MS)
    return fetched
  }

  fastify.addHook('onRequest', async function checkAuthority (request) {
    enforceOriginPolicy(authorityOf(request), undefined, options.originPolicy)
  })

  // An allowed origin's preflight is answered by the CORS hook; anything else is a 405 (not the
  // CORS plugin's catch-all OPTIONS route, which answers a refused origin with a 404).
  fastify.options(resourceMetadataPath(route.path), async function refuseOtherOptions () {
    throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: { allow: 'GET' } })
  })

  fastify.get(resourceMetadataPath(route.path), async function serveProtectedResourceMetadata (request, reply) {
    const resource = `${publicOrigin(request.mcp.authority, options.publicUrl)}${route.path}`
    if (binding.kind === 'jwt') {
      return await reply.header('cache-control', 'max-age=300').send({
        resource,
        authorization_servers: binding.authorizationServers,
        ...(binding.scopesSupported === undefined ? {} : { scopes_supported: binding.scopesSupported }),
        bearer_methods_supported: ['header']
      })
    }
    const fetched = await upstreamDocument()
    if ('failure' in fetched) {
      request.log.warn({ route: route.path, code: fetched.failure.code }, 'the upstream\'s protected resource metadata could not be fetched')
      throw fetched.failure
    }
    if (fetched.document === undefined) throw new GatewayError('MCPGW_RESOURCE_METADATA_NOT_FOUND')
    return await reply.header('cache-control', 'max-age=60').send({ ...fetched.document, resource })
  })
}
