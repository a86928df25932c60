import cors from '@fastify/cors'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { DestinationStream } from 'pino'
import { pino } from 'pino'
import { adminApi } from './admin/admin-api.js'
import type { GatewayConfig, RouteConfig } from './config/validate-config.js'
import { GatewayError } from './errors.js'
import { closeConnectionsWhenDraining } from './lifecycle/graceful-shutdown.js'
import { loggerOptions, resolveLogLevel } from './logging/logger-options.js'
import { instrumentSessionStore } from './observability/instrumented-session-store.js'
import { createGatewayMetrics, type GatewayMetrics } from './observability/metrics.js'
import { createRequestRecorder } from './observability/request-outcome.js'
import { createTracing } from './observability/tracing.js'
import { protectedResourceMetadata } from './oauth/protected-resource-metadata.js'
import { resourceMetadataPath } from './oauth/resource-metadata-url.js'
import { mcpRoute } from './proxy/mcp-route.js'
import { UpstreamClient } from './upstream/upstream-client.js'
import { isUpstreamFailure, upstreamFailure } from './upstream/upstream-failure.js'
import { newRequestContext } from './proxy/request-context.js'
import { malformedRequestHandler, unmetExpectationHandler } from './proxy/malformed-request.js'
import { NO_FAULTS, type Checkpoint } from './proxy/handler-steps.js'
import { sendGatewayError } from './proxy/send-gateway-error.js'
import { corsOptions } from './security/cors.js'
import { resolveOriginPolicy } from './security/origin-guard.js'
import { createPrincipalResolver } from './security/principal.js'
import { createSessionStore } from './sessions/create-session-store.js'
import { ReplicaRelay } from './sessions/replica-relay.js'
import { SessionEnding } from './sessions/session-ending.js'
import type { SessionStore } from './sessions/session-store.js'
import { UpstreamInstances } from './stateful/upstream-instances.js'
import { UpstreamSessionEnding } from './stateful/upstream-session-ending.js'
import type { StreamObserver, StreamSettings } from './streams/stream-settings.js'
import { StreamRegistry } from './streams/stream-registry.js'

export interface BuildGatewayOptions {
  /** Where JSON log lines go (tests read them back); stdout by default. */
  readonly logDestination?: DestinationStream
  /** Environment for `LOG_LEVEL`; process.env by default. */
  readonly env?: NodeJS.ProcessEnv
  /** A store to use instead of the one the config describes (tests share one between instances). */
  readonly store?: SessionStore
  /** Tests only: a fault at each handler step (src/proxy/handler-steps.ts). */
  readonly checkpoint?: Checkpoint
}

declare module 'fastify' {
  interface FastifyInstance {
    sessionStore: SessionStore
    /** The separate metrics server when `metrics.port` is set. */
    metricsServer: FastifyInstance | null
  }
}

/** How long a shutdown waits for the ends of the streams it stopped to be kept. */
const STREAM_ENDS_TIMEOUT_MS = 5_000

/** An incoming x-request-id is kept only when it is short visible ASCII: it ends up in every log line. */
const acceptableRequestId = /^[\x21-\x7e]{1,128}$/

/**
 * Generated ids: a random prefix per process and a counter, unique across replicas and restarts
 * without paying for a random UUID on every request (it showed in the profile).
 */
function requestIdGenerator (): (request: IncomingMessage) => string {
  const prefix = randomUUID().slice(0, 8)
  let counter = 0
  return (request) => {
    const incoming = request.headers['x-request-id']
    if (typeof incoming === 'string' && acceptableRequestId.test(incoming)) return incoming
    counter = (counter + 1) % Number.MAX_SAFE_INTEGER
    return `${prefix}-${counter.toString(36)}`
  }
}

/** Turns anything thrown while serving a request into one of our coded errors. */
function toGatewayError (error: FastifyError | Error): GatewayError {
  if (error instanceof GatewayError) return error
  const fastifyError = error as FastifyError
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new GatewayError('MCPGW_BODY_TOO_LARGE')
  // An upstream body handed to the reply failed or closed before its first byte: the upstream went
  // away, or (handled by the caller) the client did and the body was closed for it.
  if (fastifyError.code === 'ERR_STREAM_PREMATURE_CLOSE') return new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: 'the upstream\'s answer ended before its first byte', cause: error })
  if (fastifyError.code?.startsWith('UND_ERR_') === true) return upstreamFailure(error)
  // A route schema refused a URL parameter (the admin API's ids, cursors, limits): the message names
  // the parameter and the rule, never the value.
  if (fastifyError.code === 'FST_ERR_VALIDATION') return new GatewayError('MCPGW_INVALID_PARAMETER', { detail: fastifyError.message })
  // Fastify's own 4xx (bad content-length, malformed URL ...): its messages carry no client data.
  if (fastifyError.statusCode !== undefined && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return new GatewayError('MCPGW_INVALID_REQUEST', { detail: fastifyError.message })
  }
  return new GatewayError('MCPGW_INTERNAL_ERROR', { cause: error })
}

/**
 * A 5xx in the log, by whose fault it is (docs/operating.md, "Logs"): the gateway's own (a bug) or a
 * dependency of its own that is down (Redis, the JWKS) at error, with the cause; the upstream's at
 * warn, with its code only; a refusal while shutting down only in the request's own line.
 */
function logFailure (log: FastifyBaseLogger, failure: GatewayError, thrown: Error): void {
  if (failure.statusCode < 500 || failure.code === 'MCPGW_SHUTTING_DOWN') return
  if (isUpstreamFailure(failure) || failure.code === 'MCPGW_INPUT_ROUNDS_EXCEEDED') {
    log.warn({ code: failure.code, cause: (failure.cause as { code?: unknown } | undefined)?.code }, 'request failed: the upstream')
    return
  }
  log.error({ err: failure.cause ?? thrown, code: failure.code }, 'request failed')
}

async function metricsEndpoint (app: FastifyInstance, metrics: GatewayMetrics, path: string): Promise<void> {
  app.get(path, async function serveMetrics (_request, reply) {
    return await reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}

export async function buildGateway (config: GatewayConfig, options: BuildGatewayOptions = {}): Promise<FastifyInstance> {
  const level = resolveLogLevel(config.log.level, options.env ?? process.env)
  const pinoLogger = pino(loggerOptions(level), options.logDestination ?? pino.destination(1))
  const requestIds = requestIdGenerator()
  const logger: FastifyBaseLogger = pinoLogger
  // The level is fixed for the process: decide once whether request lines are written at all.
  const logRequests = pinoLogger.isLevelEnabled('info')
  const app = Fastify({
    loggerInstance: logger,
    // One line per request, written by logRequest below, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    genReqId: requestIds,
    clientErrorHandler: malformedRequestHandler(requestIds, logger, logRequests),
    // A request without Host reaches the edge, which answers it as a coded error (below).
    http: { requireHostHeader: false },
    bodyLimit: config.limits.maxBodyBytes,
    // Refused by lifecycle/graceful-shutdown.ts instead, with a coded error.
    return503OnClosing: false,
    // request.ip from X-Forwarded-For only behind proxies the operator names (rate limit per address).
    trustProxy: typeof config.listen.trustProxy === 'boolean' ? config.listen.trustProxy : [...config.listen.trustProxy]
  })

  const metrics = createGatewayMetrics()
  const tracing = createTracing(config.tracing)
  const store = instrumentSessionStore(options.store ?? createSessionStore(config, app.log), metrics)
  const relay = new ReplicaRelay(store, app.log)
  metrics.relayCounts = () => relay.counts
  const streamsConfig = config.streams
  const observe: StreamObserver = {
    streamEnded: (end) => { metrics.streamsEnded.inc({ end }) },
    resumed: (outcome) => { metrics.streamResumes.inc({ outcome }) },
    limitReached: (limit) => { metrics.streamLimits.inc({ limit }) }
  }
  const registry = new StreamRegistry(
    { perSession: streamsConfig.maxAbandonedPerSession, perPrincipal: streamsConfig.maxAbandonedPerPrincipal, total: streamsConfig.maxAbandoned },
    observe.limitReached)
  metrics.streamCounts = () => registry.counts
  const streams: StreamSettings = {
    events: streamsConfig.resumable
      ? store.streamEvents({ maxEvents: streamsConfig.maxEvents, retention: streamsConfig.retention, maxBytesPerStream: streamsConfig.maxBytesPerStream, maxBytesPerSession: streamsConfig.maxBytesPerSession })
      : undefined,
    retention: streamsConfig.retention,
    keepAlive: streamsConfig.keepAlive,
    maxConnectionTime: streamsConfig.maxConnectionTime,
    registry,
    observe
  }
  const upstreamSessions = new UpstreamSessionEnding(app.log)
  const sessionEnding = new SessionEnding({ store, relay, events: streams.events, terminated: metrics.sessionsTerminated, upstreamSessions, log: app.log })
  app.decorate('sessionStore', store)
  app.decorate('metricsServer', null)
  app.decorateRequest('mcp', null as never)

  const requestRecorder = createRequestRecorder(metrics, logRequests)
  app.server.on('checkExpectation', unmetExpectationHandler(requestIds, logger, logRequests))
  app.addHook('onRequest', async function attachRequestContext (request, reply) {
    request.mcp = newRequestContext()
    request.mcp.route = request.routeOptions.url
    reply.header('x-request-id', request.id)
    // One hook, not two, on every request: the abort watch belongs to the same start of a request.
    requestRecorder.watchForAbort(request, reply)
    // An HTTP/1.1 request must name its host (RFC 9112 §3.2), whatever the path.
    if (request.headers.host === undefined && request.raw.httpVersionMinor >= 1) throw new GatewayError('MCPGW_INVALID_AUTHORITY', { detail: 'an HTTP/1.1 request must carry Host' })
  })
  app.addHook('onResponse', async function recordRequest (request, reply) {
    requestRecorder.finished(request, reply)
  })
  closeConnectionsWhenDraining(app)
  app.addHook('preClose', async function stopLimitingStreams () {
    // The connections still open are about to be closed: their streams are not abandoned, they are
    // all ended below, with the reason that says so.
    registry.beginShutdown()
  })
  // In this order (docs/streams.md, "A dropped client does not cancel its call"): the streams are
  // stopped and their ends kept while the upstreams and the store are still there, so that a resume
  // on another replica stops at once; then the upstreams; the store last.
  const upstreams: Array<UpstreamClient | UpstreamInstances> = []
  app.addHook('onClose', async function closeInOrder () {
    await registry.stopAll(STREAM_ENDS_TIMEOUT_MS)
    upstreamSessions.close()
    await Promise.all(upstreams.map(async (upstream) => { await upstream.close() }))
    await app.metricsServer?.close()
    await tracing.close()
    relay.close()
    // A store passed in by the caller belongs to the caller.
    if (options.store === undefined) await store.close()
  })
  app.addHook('onReady', async function waitForSessionStore () {
    // Without this, the first requests after start-up would find Redis still connecting and get 503.
    // A Redis that stays away does not stop start-up: requests get 503 (and /readyz says so) until
    // it answers, then the gateway recovers by itself.
    await store.ready().catch((error: unknown) => {
      app.log.warn({ err: error }, 'session store not reachable yet: answering 503 until it is')
    })
    // Listening to the other replicas from the start: pub/sub keeps nothing for a late subscriber, so a
    // cancellation or a stream claim sent before this replica's first stream would otherwise be lost.
    await relay.join().catch((error: unknown) => {
      app.log.warn({ code: (error as { code?: unknown }).code }, 'cannot hear the other replicas yet: retried with the first stream')
    })
  })

  app.setErrorHandler(function handleError (error: FastifyError, request, reply) {
    // A client that left is an ordinary end, not a fault: there is no one to answer, and the request's
    // one log line says "client aborted" (observability/request-outcome.ts). What failed here is a
    // consequence of its leaving (the stream it was sent closed before its first byte).
    const gatewayError = toGatewayError(error)
    const clientGone = reply.raw.destroyed || request.raw.socket === null || request.raw.socket.destroyed
    if (clientGone && gatewayError.code !== 'MCPGW_INTERNAL_ERROR') {
      reply.raw.destroy()
      return
    }
    logFailure(request.log, gatewayError, error)
    sendGatewayError(reply, gatewayError)
  })
  app.setNotFoundHandler(function handleNotFound (_request, reply) {
    sendGatewayError(reply, new GatewayError('MCPGW_ROUTE_NOT_FOUND'))
  })

  app.get('/healthz', async function liveness () {
    return { status: 'ok' }
  })
  app.get('/readyz', async function readiness (_request, reply) {
    const ready = store.isAvailable()
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'session store unavailable' })
  })

  if (config.metrics.enabled && config.metrics.port === null) {
    await metricsEndpoint(app, metrics, config.metrics.path)
  } else if (config.metrics.enabled && config.metrics.port !== null) {
    // Metrics on their own port: scrapable from inside the cluster without exposing them with MCP.
    const metricsServer = Fastify({ loggerInstance: logger.child({ server: 'metrics' }), logController: new LogController({ disableRequestLogging: true }) })
    closeConnectionsWhenDraining(metricsServer)
    await metricsEndpoint(metricsServer, metrics, config.metrics.path)
    const port = config.metrics.port
    app.metricsServer = metricsServer
    app.addHook('onListen', async function listenForMetrics () {
      await metricsServer.listen({ host: config.metrics.host, port })
    })
  }

  if (config.admin !== null) {
    await app.register(adminApi, { token: config.admin.token, store, sessionEnding, binding: config.sessions.binding })
  }

  const originPolicy = resolveOriginPolicy(config.security, config.listen.host)
  if (originPolicy.originsConfigured) {
    const corsPaths = new Set(config.routes.flatMap((route) => [route.path, resourceMetadataPath(route.path)]))
    await app.register(cors, corsOptions(originPolicy, config.security.corsCredentials, corsPaths))
  }
  const principalResolver = createPrincipalResolver(config.sessions.binding, app.log)
  const metadataPaths = new Set<string>()
  for (const route of config.routes) {
    const instances = route.upstreamSessions ? upstreamInstances(route, store, config.limits.maxResponseBytes, metrics, app.log) : undefined
    if (instances !== undefined) upstreamSessions.addRoute(route.path, instances)
    // A stateful route's first instance is its client where one stands for the route (sizes, limits);
    // each session's requests go to that session's instance.
    const upstream = instances?.all[0]?.client ?? new UpstreamClient(route.upstream, route.timeout, config.limits.maxResponseBytes)
    upstreams.push(instances ?? upstream)
    // Routes `/mcp` and `/mcp/` share one metadata path: the first serves it.
    if (!metadataPaths.has(resourceMetadataPath(route.path))) {
      metadataPaths.add(resourceMetadataPath(route.path))
      // A stateful route's document comes from a healthy instance (any of them serves the same one).
      const candidates = instances === undefined ? () => [upstream] : () => instances.inHealthOrder().map((instance) => instance.client)
      await app.register(protectedResourceMetadata, { route, upstreams: candidates, binding: config.sessions.binding, publicUrl: config.listen.publicUrl, originPolicy })
    }
    await app.register(mcpRoute, {
      route,
      upstream,
      publicUrl: config.listen.publicUrl,
      store,
      relay,
      sessionEnding,
      limits: config.limits,
      streams,
      sessionTimeouts: config.sessions,
      originPolicy,
      principalResolver,
      metrics,
      tracing,
      instances,
      upstreamSessions,
      checkpoint: options.checkpoint ?? NO_FAULTS
    })
  }
  return app
}

/** A stateful route's instances, their health shown in `mcpgw_upstream_instance_up` and logged as it changes. */
function upstreamInstances (route: RouteConfig, store: SessionStore, maxResponseBytes: number, metrics: GatewayMetrics, log: FastifyBaseLogger): UpstreamInstances {
  return new UpstreamInstances({
    urls: route.instances,
    balance: route.balance,
    route: route.path,
    store,
    headersTimeout: route.timeout,
    maxResponseBytes,
    healthCheck: route.healthCheck ?? null,
    onHealthChanged: (instance, healthy, reason) => {
      metrics.upstreamInstanceUp.set({ route: route.path, instance: instance.key }, healthy ? 1 : 0)
      if (reason !== 'configured') log[healthy ? 'info' : 'warn']({ route: route.path, instance: instance.key, reason }, healthy ? 'upstream instance placed again' : 'upstream instance ejected')
    }
  })
}
