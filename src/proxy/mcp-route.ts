import replyFrom from '@fastify/reply-from'
import type { FastifyInstance } from 'fastify'
import { LegacyBridgedHandler } from '../bridge/legacy-bridged-handler.js'
import type { GatewayConfig, RouteConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import { parseClientPost } from '../mcp/json-rpc.js'
import type { GatewayMetrics } from '../observability/metrics.js'
import type { Tracing } from '../observability/tracing.js'
import { enforceOriginPolicy, type OriginPolicy } from '../security/origin-guard.js'
import { authorityOf } from '../security/request-authority.js'
import type { PrincipalResolver } from '../security/principal.js'
import type { ReplicaRelay } from '../sessions/replica-relay.js'
import type { SessionEnding } from '../sessions/session-ending.js'
import type { SessionStore } from '../sessions/session-store.js'
import type { UpstreamClient } from '../upstream/upstream-client.js'
import { bearerChallenge } from '../oauth/resource-metadata-url.js'
import { deleteSession } from './delete-handler.js'
import { serveResume } from './resume-handler.js'
import type { LegacyHandler } from './legacy-handler.js'
import { LegacyForwardedHandler } from './legacy-forwarded-handler.js'
import { ModernPassThroughHandler } from './modern-pass-through-handler.js'
import { RequestDecision, type LegacyPath } from './request-decision.js'
import { createEraProbe, createRouteContext } from './route-context.js'
import type { Checkpoint } from './handler-steps.js'
import type { RouteContext } from './route-context.js'
import type { StreamSettings } from '../streams/stream-settings.js'
import { StatefulFailover } from '../stateful/stateful-failover.js'
import { StatefulHandler } from '../stateful/stateful-handler.js'
import type { UpstreamInstances } from '../stateful/upstream-instances.js'
import type { UpstreamSessionEnding } from '../stateful/upstream-session-ending.js'

/*
 * One MCP endpoint (`routes[i]`), registered once per route in its own encapsulated context (its
 * own body parser, its own upstream pool). This file only wires: hooks, then each HTTP method to
 * the one decision (request-decision.ts) and the one handler it names (docs/architecture.md).
 */

export interface McpRouteOptions {
  readonly route: RouteConfig
  /** The route's upstream client (one pool); owned and closed by the gateway. */
  readonly upstream: UpstreamClient
  /** listen.publicUrl: the origin clients use (OAuth metadata names it). */
  readonly publicUrl: string | undefined
  readonly store: SessionStore
  readonly relay: ReplicaRelay
  readonly sessionEnding: SessionEnding
  readonly limits: GatewayConfig['limits']
  readonly streams: StreamSettings
  readonly sessionTimeouts: { readonly idleTimeout: number, readonly maxLifetime: number }
  readonly originPolicy: OriginPolicy
  /** null: sessions are not bound to an identity. */
  readonly principalResolver: PrincipalResolver | null
  readonly metrics: GatewayMetrics
  readonly tracing: Tracing
  /** The instances of a stateful upstream (`upstreamSessions`); owned and closed by the gateway. */
  readonly instances: UpstreamInstances | undefined
  /** Ends the upstream sessions a failover leaves behind. */
  readonly upstreamSessions: UpstreamSessionEnding
  /** A test's fault at each handler step (handler-steps.ts). */
  readonly checkpoint: Checkpoint
}

/** The handler of a stateful route, with its failover and its metrics (docs/stateful-upstreams.md). */
function statefulHandler (context: RouteContext, instances: UpstreamInstances, ends: UpstreamSessionEnding, metrics: GatewayMetrics, log: FastifyInstance['log']): StatefulHandler {
  const { route, store } = context
  metrics.upstreamSessionSources.push(async () => {
    const counts = await store.upstreamSessionCounts(route.path)
    for (const instance of instances.all) metrics.upstreamSessions.set({ route: route.path, instance: instance.key }, counts.get(instance.key) ?? 0)
  })
  const failover = new StatefulFailover({ route: route.path, store, instances, ends, replayTimeout: route.initializeTimeout, failovers: metrics.upstreamFailovers, log })
  return new StatefulHandler(context, instances, failover, ends)
}

export async function mcpRoute (fastify: FastifyInstance, options: McpRouteOptions): Promise<void> {
  const { route, store, metrics, tracing } = options
  const upstream = options.upstream

  const context = createRouteContext(options, fastify.log)
  const probe = createEraProbe(context, options.metrics, fastify.log)
  const decide = new RequestDecision(context, probe)
  const stateful = options.instances === undefined ? undefined : statefulHandler(context, options.instances, options.upstreamSessions, metrics, fastify.log)
  const modern = stateful ?? new ModernPassThroughHandler(context)
  const legacy: Record<LegacyPath, LegacyHandler> = {
    forwarded: stateful ?? new LegacyForwardedHandler(context),
    bridged: new LegacyBridgedHandler(context)
  }

  await fastify.register(replyFrom, { base: upstream.origin, undici: upstream.pool, disableRequestLogging: true })

  // The body is kept as the client's bytes: it is inspected here but forwarded unchanged.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: options.limits.maxBodyBytes }, function keepRawBody (_request, body, done) {
    done(null, body)
  })

  if (tracing.enabled) {
    // Ended, finished or aborted, with the request's one log line (observability/request-outcome.ts).
    fastify.addHook('onRequest', async function startTraceSpan (request) {
      request.mcp.span = tracing.startRequestSpan(request.method, route.path, request.headers)
    })
  }

  // The authority is read once, before anything else: the Host allowlist, the public URL and every
  // rewritten challenge use this one result (security/request-authority.ts).
  fastify.addHook('onRequest', async function checkAuthorityAndOrigin (request) {
    request.mcp.passCookies = route.passCookies
    enforceOriginPolicy(authorityOf(request), request.headers, options.originPolicy)
  })

  const resolvePrincipal = options.principalResolver
  if (resolvePrincipal !== null) {
    // Before the body is read: with a JWT binding an unauthenticated request costs no parsing.
    fastify.addHook('onRequest', async function identifyCaller (request) {
      try {
        request.mcp.principal = await resolvePrincipal(request.headers)
      } catch (error) {
        // A 401 tells OAuth clients where to find the authorization server (RFC 9728 §5.1).
        if (!(error instanceof GatewayError) || error.code !== 'MCPGW_UNAUTHORIZED') throw error
        throw error.withHeaders({ 'www-authenticate': bearerChallenge(error.headers['www-authenticate'] ?? 'Bearer', context.resourceMetadataUrl(request)) })
      }
    })
  }

  fastify.post(route.path, async function handlePost (request, reply) {
    const post = parseClientPost((request.body as Buffer | undefined) ?? '')
    request.mcp.rpcMethod = post.rpcMethod
    request.mcp.rpcId = post.id
    const decision = await decide.post(request, post)
    if (decision.kind === 'modern') return await modern.modernPost(request, reply)
    const handler = legacy[decision.path]
    if (decision.kind === 'initialize') return await handler.initialize(request, reply, decision.initialize)
    return await handler.post(request, reply, post, decision.session)
  })

  fastify.get(route.path, async function handleGet (request, reply) {
    const decision = await decide.getStream(request)
    const handler = legacy[decision.path]
    if (decision.lastEventId !== undefined) return await serveResume(context, handler, request, reply, { ...decision, lastEventId: decision.lastEventId })
    return await handler.getStream(request, reply, decision.session)
  })

  fastify.delete(route.path, async function handleDelete (request, reply) {
    return await deleteSession(options.sessionEnding, store, route.path, request, reply)
  })

  // With CORS on, an allowed origin's preflight is answered 204 by the CORS hook before any route
  // hook; from any other origin the Origin check answers 403; without one, OPTIONS is a 405 here.
  fastify.route({
    method: ['PUT', 'PATCH', 'HEAD', 'OPTIONS'],
    url: route.path,
    handler: async function handleOtherMethod () {
      throw new GatewayError('MCPGW_METHOD_NOT_ALLOWED', { headers: { allow: 'GET, POST, DELETE' } })
    }
  })
}
