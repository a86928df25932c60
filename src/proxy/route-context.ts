import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Counter } from 'prom-client'
import { probeUpstreamEra } from '../bridge/server-discover.js'
import type { GatewayMetrics } from '../observability/metrics.js'
import { publicOrigin, resourceMetadataUrl } from '../oauth/resource-metadata-url.js'
import { UpstreamEraProbe } from '../upstream/upstream-era.js'
import { isUpstreamFailure, upstreamFailureKind } from '../upstream/upstream-failure.js'
import type { GatewayConfig, RouteConfig } from '../config/validate-config.js'
import type { ReplicaRelay } from '../sessions/replica-relay.js'
import type { SessionStore } from '../sessions/session-store.js'
import type { UpstreamObserver } from '../upstream/forward-request.js'
import type { UpstreamClient } from '../upstream/upstream-client.js'
import type { StreamSettings } from '../streams/stream-settings.js'
import type { Checkpoint } from './handler-steps.js'

/** What every handler of one route works with; built once per route. */
export interface RouteContext {
  readonly route: RouteConfig
  readonly store: SessionStore
  /** The route's one upstream client (one undici pool), forwarded and bridged requests alike. */
  readonly upstream: UpstreamClient
  readonly observeUpstream: UpstreamObserver
  /** `mcpgw_sessions_created_total` for this route. */
  readonly sessionsCreated: Counter.Internal
  /** Hears session ends from every replica (for the streams this replica holds). */
  readonly relay: ReplicaRelay
  readonly sessionTimeouts: { readonly idleTimeout: number, readonly maxLifetime: number }
  readonly limits: GatewayConfig['limits']
  /** How the SSE streams of legacy sessions are kept and paced (docs/streams.md). */
  readonly streams: StreamSettings
  /** Where this route's OAuth metadata is, for this request (upstream challenges are rewritten to it). */
  resourceMetadataUrl (request: FastifyRequest): string
  /** Called at each step of the handlers (handler-steps.ts): a test's fault, nothing in production. */
  readonly checkpoint: Checkpoint
}

export interface RouteContextOptions {
  readonly route: RouteConfig
  readonly upstream: UpstreamClient
  readonly store: SessionStore
  readonly relay: ReplicaRelay
  readonly publicUrl: string | undefined
  readonly sessionTimeouts: RouteContext['sessionTimeouts']
  readonly limits: GatewayConfig['limits']
  readonly streams: StreamSettings
  readonly metrics: GatewayMetrics
  readonly checkpoint: Checkpoint
}

/** The route's context, with its metric label children resolved once (no label hashing per request). */
export function createRouteContext (options: RouteContextOptions, log: FastifyBaseLogger): RouteContext {
  const { route, metrics } = options
  const upstreamDuration = metrics.upstreamDuration.labels({ route: route.path })
  return {
    route,
    store: options.store,
    upstream: options.upstream,
    sessionsCreated: metrics.sessionsCreated.labels({ route: route.path }),
    relay: options.relay,
    sessionTimeouts: options.sessionTimeouts,
    limits: options.limits,
    streams: options.streams,
    checkpoint: options.checkpoint,
    resourceMetadataUrl: (request) => resourceMetadataUrl(publicOrigin(request.mcp.authority, options.publicUrl), route.path),
    // Forwarded and bridged requests count in the same upstream metrics; a fault of ours is logged instead.
    observeUpstream: {
      upstreamResponded: (seconds) => { upstreamDuration.observe(seconds) },
      upstreamFailed: (failure) => {
        if (isUpstreamFailure(failure)) metrics.upstreamErrors.inc({ route: route.path, kind: upstreamFailureKind(failure) })
        else log.error({ route: route.path, err: failure.cause ?? failure, code: failure.code }, 'gateway fault while talking to the upstream')
      }
    }
  }
}

/** The route's era probe, its decisions shown in `mcpgw_upstream_era` (docs/operating.md, "Era probing"). */
export function createEraProbe (context: RouteContext, metrics: GatewayMetrics, log: FastifyBaseLogger): UpstreamEraProbe {
  const { route, upstream } = context
  // Asked while an initialize waits for it: bounded like the initialize itself.
  const probeTimeout = Math.min(route.timeout, route.initializeTimeout)
  // A stateful upstream keeps sessions: legacy by definition, never probed.
  const probe = new UpstreamEraProbe(route.upstreamSessions ? 'legacy' : route.upstreamEra, async (headers) => await probeUpstreamEra(upstream, headers, probeTimeout), {
    onProbeFailed: (error, retryInMs) => {
      log.warn({ route: route.path, reason: (error as Error).message, retryInMs }, 'upstream era probe decided nothing: served as legacy until it does')
    },
    onDecided: (era) => {
      for (const known of ['legacy', 'modern', 'undecided'] as const) metrics.upstreamEra.set({ route: route.path, era: known }, known === era ? 1 : 0)
    }
  })
  if (probe.knownEra() === undefined) metrics.upstreamEra.set({ route: route.path, era: 'undecided' }, 1)
  return probe
}
