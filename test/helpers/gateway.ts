import type { FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { validateConfig, type GatewayConfig } from '../../src/config/validate-config.js'
import { buildGateway } from '../../src/gateway.js'
import type { Checkpoint } from '../../src/proxy/handler-steps.js'
import type { SessionStore } from '../../src/sessions/session-store.js'

export interface TestGateway {
  readonly app: FastifyInstance
  /** Base URL, e.g. http://127.0.0.1:40123 */
  readonly origin: string
  readonly config: GatewayConfig
  /** Every JSON log line written so far, parsed. */
  readonly logs: Array<Record<string, unknown>>
  /** Every log line as written, for searching raw text. */
  readonly rawLogs: string[]
  close (): Promise<void>
}

export interface TestGatewayOptions {
  /** Raw config (the YAML's shape); listen defaults to 127.0.0.1:0. */
  readonly config: Record<string, unknown>
  readonly store?: SessionStore
  readonly env?: NodeJS.ProcessEnv
  /** A fault at each handler step (src/proxy/handler-steps.ts). */
  readonly checkpoint?: Checkpoint
}

/** Builds and starts a gateway from a raw config, capturing its JSON logs. */
export async function startTestGateway (options: TestGatewayOptions): Promise<TestGateway> {
  const config = validateConfig({ listen: { host: '127.0.0.1', port: 0 }, log: { level: 'info' }, ...options.config })
  const logs: Array<Record<string, unknown>> = []
  const rawLogs: string[] = []
  const logDestination = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue
        rawLogs.push(line)
        logs.push(JSON.parse(line) as Record<string, unknown>)
      }
      callback()
    }
  })
  const app = await buildGateway(config, { logDestination, env: options.env ?? {}, ...(options.store === undefined ? {} : { store: options.store }), ...(options.checkpoint === undefined ? {} : { checkpoint: options.checkpoint }) })
  await app.listen({ host: config.listen.host, port: config.listen.port })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('gateway has no TCP address')
  let closed: Promise<void> | undefined
  return {
    app,
    origin: `http://127.0.0.1:${address.port}`,
    config,
    logs,
    rawLogs,
    close: async () => {
      closed ??= app.close().then(() => undefined)
      return await closed
    }
  }
}
