import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import type { DestinationStream } from 'pino'
import { pino } from 'pino'
import type { GatewayConfig } from './config/validate-config.js'
import { GatewayError } from './errors.js'
import { loggerOptions, resolveLogLevel } from './logging/logger-options.js'
import { adminApi } from './admin/admin-api.js'
import { mcpRoute } from './proxy/mcp-route.js'
import { newRequestContext } from './proxy/request-context.js'
import { resolveOriginPolicy } from './security/origin-guard.js'
import { createPrincipalResolver } from './security/principal.js'
import { sendGatewayError } from './proxy/send-gateway-error.js'
import { createSessionStore } from './sessions/create-session-store.js'
import { shortSessionId } from './sessions/session-id.js'
import type { SessionStore } from './sessions/session-store.js'

export interface BuildGatewayOptions {
  /** Where JSON log lines go (tests read them back); stdout by default. */
  readonly logDestination?: DestinationStream
  /** Environment for `LOG_LEVEL`; process.env by default. */
  readonly env?: NodeJS.ProcessEnv
  /** A store to use instead of the one the config describes (tests share one between instances). */
  readonly store?: SessionStore
}

declare module 'fastify' {
  interface FastifyInstance {
    sessionStore: SessionStore
  }
}

/** Turns anything thrown while serving a request into one of our coded errors. */
function toGatewayError (error: FastifyError | Error): GatewayError {
  if (error instanceof GatewayError) return error
  const fastifyError = error as FastifyError
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new GatewayError('MCPGW_BODY_TOO_LARGE')
  // Fastify's own 4xx (bad content-length, malformed URL ...): its messages carry no client data.
  if (fastifyError.statusCode !== undefined && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return new GatewayError('MCPGW_INVALID_REQUEST', { detail: fastifyError.message })
  }
  return new GatewayError('MCPGW_INTERNAL_ERROR', { cause: error })
}

export async function buildGateway (config: GatewayConfig, options: BuildGatewayOptions = {}): Promise<FastifyInstance> {
  const level = resolveLogLevel(config.log.level, options.env ?? process.env)
  const logger: FastifyBaseLogger = pino(loggerOptions(level), options.logDestination ?? pino.destination(1))
  const app = Fastify({
    loggerInstance: logger,
    // One line per request, written by logRequest below, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    requestIdHeader: 'x-request-id',
    bodyLimit: config.limits.maxBodyBytes,
    return503OnClosing: true,
    // request.ip from X-Forwarded-For only behind proxies the operator names (rate limit per address).
    trustProxy: typeof config.listen.trustProxy === 'boolean' ? config.listen.trustProxy : [...config.listen.trustProxy]
  })

  const store = options.store ?? createSessionStore(config, app.log)
  app.decorate('sessionStore', store)
  app.decorateRequest('mcp', null as never)
  app.addHook('onRequest', async function attachRequestContext (request) {
    request.mcp = newRequestContext()
    request.mcp.route = request.routeOptions.url
  })
  app.addHook('onResponse', async function logRequest (request, reply) {
    const context = request.mcp
    request.log.info({
      route: context.route,
      httpMethod: request.method,
      rpcMethod: context.rpcMethod,
      era: context.era,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      session: context.sessionId === undefined ? undefined : shortSessionId(context.sessionId),
      principal: context.principal?.slice(0, 8),
      outcome: context.outcome,
      error: context.errorCode
    }, 'request completed')
  })
  app.addHook('onReady', async function waitForSessionStore () {
    // Without this, the first requests after start-up would find Redis still connecting and get 503.
    // A Redis that stays away does not stop start-up: requests get 503 (and /readyz says so) until
    // it answers, then the gateway recovers by itself.
    await store.ready().catch((error: unknown) => {
      app.log.warn({ err: error }, 'session store not reachable yet: answering 503 until it is')
    })
  })
  app.addHook('onClose', async function closeSessionStore () {
    // A store passed in by the caller belongs to the caller.
    if (options.store === undefined) await store.close()
  })

  app.setErrorHandler(function handleError (error: FastifyError, request, reply) {
    const gatewayError = toGatewayError(error)
    if (gatewayError.statusCode >= 500) request.log.error({ err: gatewayError.cause ?? error, code: gatewayError.code }, 'request failed')
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

  if (config.admin !== null) {
    await app.register(adminApi, { token: config.admin.token, store, binding: config.sessions.binding })
  }

  const originPolicy = resolveOriginPolicy(config.security, config.listen.host)
  const principalResolver = createPrincipalResolver(config.sessions.binding)
  for (const route of config.routes) {
    await app.register(mcpRoute, {
      route,
      store,
      maxBodyBytes: config.limits.maxBodyBytes,
      originPolicy,
      principalResolver,
      initializePerMinute: config.limits.initializePerMinute
    })
  }
  return app
}
