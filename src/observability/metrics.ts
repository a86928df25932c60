import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

/*
 * Prometheus metrics (docs/operating.md). Label values are bounded on purpose: a JSON-RPC method comes from
 * the client, so anything outside the MCP method list is counted as `other` (a client inventing
 * method names must not create unlimited time series).
 */

const KNOWN_RPC_METHODS = new Set([
  'initialize', 'ping', 'tools/list', 'tools/call', 'resources/list', 'resources/read', 'resources/templates/list',
  'resources/subscribe', 'resources/unsubscribe', 'prompts/list', 'prompts/get', 'completion/complete', 'logging/setLevel',
  'server/discover', 'subscriptions/listen', 'tasks/get', 'tasks/list', 'tasks/cancel', 'tasks/result', 'batch',
  'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed'
])

export function rpcMethodLabel (method: string | undefined): string {
  if (method === undefined) return 'none'
  return KNOWN_RPC_METHODS.has(method) ? method : 'other'
}

export interface GatewayMetrics {
  readonly registry: Registry
  readonly sessionsCreated: Counter<'route'>
  readonly sessionsTerminated: Counter<'reason'>
  readonly requests: Counter<'route' | 'status' | 'rpc_method'>
  readonly refusals: Counter<'status' | 'cause'>
  readonly upstreamDuration: Histogram<'route'>
  readonly upstreamErrors: Counter<'route' | 'kind'>
  readonly redisDuration: Histogram<'operation' | 'outcome'>
  readonly upstreamEra: Gauge<'route' | 'era'>
  readonly streamsEnded: Counter<'end'>
  readonly streamResumes: Counter<'outcome'>
  readonly streamLimits: Counter<'limit'>
  readonly streamsRunning: Gauge<'state'>
  /** Read at each scrape to set `streamsRunning` (the replica's stream registry). */
  streamCounts: () => { readonly running: number, readonly abandoned: number }
  readonly replicaListeners: Gauge<'kind'>
  /** Read at each scrape to set `replicaListeners` (the replica relay). */
  relayCounts: () => Readonly<Record<string, number>>
  /** Stateful upstreams (docs/stateful-upstreams.md). */
  readonly upstreamFailovers: Counter<'route' | 'cause'>
  readonly upstreamInstanceUp: Gauge<'route' | 'instance'>
  readonly upstreamSessions: Gauge<'route' | 'instance'>
  /** Read at each scrape to set `upstreamSessions` (the counts live in the session store). */
  readonly upstreamSessionSources: Array<() => Promise<void>>
}

export function createGatewayMetrics (): GatewayMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const upstreamSessionSources: Array<() => Promise<void>> = []
  const metrics = { streamCounts: () => ({ running: 0, abandoned: 0 }), relayCounts: (): Readonly<Record<string, number>> => ({}) }
  const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
  return Object.assign(metrics, {
    registry,
    sessionsCreated: new Counter({ name: 'mcpgw_sessions_created_total', help: 'Sessions minted (initialize answered with a result)', labelNames: ['route'], registers: [registry] }),
    sessionsTerminated: new Counter({ name: 'mcpgw_sessions_terminated_total', help: 'Sessions ended, by reason: delete (client DELETE), idle, lifetime, admin, evicted', labelNames: ['reason'], registers: [registry] }),
    requests: new Counter({ name: 'mcpgw_requests_total', help: 'Requests answered, by route, HTTP status and JSON-RPC method', labelNames: ['route', 'status', 'rpc_method'], registers: [registry] }),
    refusals: new Counter({ name: 'mcpgw_refusals_total', help: 'Requests the gateway refused itself (4xx), by status and cause (MCPGW_* code)', labelNames: ['status', 'cause'], registers: [registry] }),
    upstreamDuration: new Histogram({ name: 'mcpgw_upstream_duration_seconds', help: 'Time until the upstream answered with response headers', labelNames: ['route'], buckets: latencyBuckets, registers: [registry] }),
    upstreamErrors: new Counter({ name: 'mcpgw_upstream_errors_total', help: 'Upstream failures, by kind: unreachable (502), timeout (504), invalid (502, an answer the gateway cannot read or bridge), too_large (502) or session_lost (502, a stateful instance forgot a session it had just opened)', labelNames: ['route', 'kind'], registers: [registry] }),
    upstreamEra: new Gauge({ name: 'mcpgw_upstream_era', help: 'The era each route\'s upstream speaks, as decided (1) on this replica: legacy, modern, or undecided (auto, not probed yet or only transient failures)', labelNames: ['route', 'era'], registers: [registry] }),
    streamsEnded: new Counter({ name: 'mcpgw_streams_ended_total', help: 'SSE streams of legacy sessions relayed, by how they ended: complete, client gone (not resumable, or no longer kept), session ended, cancelled, taken over, abandoned (nobody resumed within streams.retention), abandoned limit (ended by a limit on calls nobody reads), shutdown (the replica stopped), store unavailable', labelNames: ['end'], registers: [registry] }),
    streamResumes: new Counter({ name: 'mcpgw_stream_resumes_total', help: 'GET with Last-Event-ID, by outcome: replayed (to the stream\'s end), interrupted (client left, session ended, stream expired) or unknown (an id the store does not hold)', labelNames: ['outcome'], registers: [registry] }),
    upstreamFailovers: new Counter({ name: 'mcpgw_upstream_failovers_total', help: 'Stateful routes: sessions moved to another upstream session, by cause: unreachable (the instance refused or dropped the connection), not_found (it answered 404 for its session: restarted or evicted), ejected (out of placement by health); counted once fleet-wide, by the replica whose move won', labelNames: ['route', 'cause'], registers: [registry] }),
    upstreamInstanceUp: new Gauge({ name: 'mcpgw_upstream_instance_up', help: 'Stateful routes: whether this replica places sessions on the instance (1) or has ejected it (0)', labelNames: ['route', 'instance'], registers: [registry] }),
    upstreamSessions: new Gauge({
      name: 'mcpgw_upstream_sessions',
      help: 'Stateful routes: live sessions per instance, across every replica (counted in the session store)',
      labelNames: ['route', 'instance'],
      registers: [registry],
      async collect () {
        await Promise.all(upstreamSessionSources.map(async (source) => { await source().catch(() => undefined) }))
      }
    }),
    upstreamSessionSources,
    redisDuration: new Histogram({ name: 'mcpgw_redis_duration_seconds', help: 'Session store round trips, by operation and outcome', labelNames: ['operation', 'outcome'], buckets: latencyBuckets, registers: [registry] }),
    streamLimits: new Counter({ name: 'mcpgw_stream_limits_total', help: 'Streams that ran into a limit (docs/streams.md, "Limits"): abandoned_per_session (the oldest was ended), abandoned_per_principal and abandoned (a new one was ended at once), bytes_per_stream and bytes_per_session (what followed was relayed but not kept)', labelNames: ['limit'], registers: [registry] }),
    streamsRunning: new Gauge({
      name: 'mcpgw_streams_running',
      help: 'SSE streams of legacy sessions this replica writes now, by state: attached (a client reads) or abandoned (its client left; the call runs on for a resume)',
      labelNames: ['state'],
      registers: [registry],
      collect () {
        const { running, abandoned } = metrics.streamCounts()
        this.set({ state: 'attached' }, running - abandoned)
        this.set({ state: 'abandoned' }, abandoned)
      }
    }),
    replicaListeners: new Gauge({
      name: 'mcpgw_replica_listeners',
      help: 'What this replica listens for from the others now, by kind: session_watches (open streams, stream guards), stream_holds (streams and resumes served here), calls (calls in flight, cancellable from any replica), answers (input requests waiting for the client). A count that only grows is a leak',
      labelNames: ['kind'],
      registers: [registry],
      collect () {
        for (const [kind, count] of Object.entries(metrics.relayCounts())) this.set({ kind }, count)
      }
    })
  })
}
