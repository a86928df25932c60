import type { FastifyRequest } from 'fastify'
import type { Counter } from 'prom-client'
import type { GatewayConfig, RouteConfig } from '../config/validate-config.js'
import type { ReplicaRelay } from '../sessions/replica-relay.js'
import type { SessionStore } from '../sessions/session-store.js'
import type { UpstreamObserver } from '../upstream/forward-request.js'
import type { UpstreamClient } from '../upstream/upstream-client.js'

/** What every handler of one route works with; built once per route by mcp-route.ts. */
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
  /** Where this route's OAuth metadata is, for this request (upstream challenges are rewritten to it). */
  resourceMetadataUrl (request: FastifyRequest): string
}
