import type { FastifyInstance } from 'fastify'
import type { GatewayConfig } from './config/validate-config.js'
import { buildGateway, type BuildGatewayOptions } from './gateway.js'

/**
 * Builds the gateway, listens (after the session store is ready or has had its connect timeout),
 * and shuts down on SIGTERM or SIGINT (docs/operating.md, "Shutdown"): stop accepting connections, let requests in
 * flight (SSE streams included) finish for up to `shutdownGrace`, then close what is still open,
 * close Redis and exit 0. Keep-alive connections are closed as they go idle
 * (lifecycle/graceful-shutdown.ts), so the process exits once its last request is done, not after the
 * grace. A second signal exits at once.
 */
export async function startGateway (config: GatewayConfig, options: BuildGatewayOptions = {}): Promise<FastifyInstance> {
  const app = await buildGateway(config, options)
  await app.listen({ host: config.listen.host, port: config.listen.port })

  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    app.log.info({ signal, shutdownGraceMs: config.shutdownGrace }, 'shutting down: no new connections, finishing requests in flight')
    const grace = setTimeout(() => {
      app.log.warn({ shutdownGraceMs: config.shutdownGrace }, 'shutdown grace elapsed: closing the connections still open')
      app.server.closeAllConnections()
      app.metricsServer?.server.closeAllConnections()
    }, config.shutdownGrace)
    grace.unref()
    app.close().then(() => {
      clearTimeout(grace)
      app.log.info('shut down')
      process.exit(0)
    }, (error: unknown) => {
      app.log.error({ err: error }, 'error while shutting down')
      process.exit(1)
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  return app
}
