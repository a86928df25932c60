import { get } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent } from 'undici'
import { eventually } from '../../test/helpers/eventually.js'
import type { TestRedis } from '../../test/helpers/redis-server.js'
import { FAULTS, initializeFlood, runWorker, type ClientContext } from './soak-clients.js'
import { seededRandom } from '../../test/helpers/session-workload.js'
import { SoakLedger } from './soak-ledger.js'
import { establishedConnections, sampleMemory, startGatewayReplica, startSoakRedis, type GatewayReplica, type LogSummary, type MemoryRange } from './soak-processes.js'
import { startSoakUpstreams, type SoakUpstreams } from './soak-upstreams.js'

/*
 * One soak run (docs/reliability.md): Redis, two gateway replicas and the upstreams start; seeded
 * workers and fault drivers run until the deadline; then the clients stop, the replicas get a bounded
 * drain, and what is left is measured: memory, upstream connections, streams that outlived their
 * session, wrong answers.
 */

export interface SoakOptions {
  readonly seconds: number
  readonly seed: number
  /** Concurrent workers (default 8). */
  readonly workers?: number
  /** Progress lines (default: none). */
  readonly progress?: (line: string) => void
}

export interface ReplicaFigures {
  readonly name: string
  readonly memory: MemoryRange
  readonly log: LogSummary
  /** SIGTERM to exit, after the soak (the shutdown grace is 2 s). */
  readonly stopMs: number
}

export interface SoakResult {
  readonly seconds: number
  readonly seed: number
  readonly workers: number
  readonly ledger: SoakLedger
  readonly replicas: readonly ReplicaFigures[]
  readonly upstreamSocketsAtEnd: number
  /** Connections the replicas still hold on their listen ports after the drain (the clients are gone). */
  readonly clientConnectionsAtEnd: number
  readonly drainMs: number
  readonly redisOutageMs: number | undefined
}

const ADMIN_TOKEN = 'soak-admin-token-0123456789'
const IDLE_TIMEOUT_MS = 10_000
/** Bound on the wait for workers to finish their scenario after the deadline. */
const WIND_DOWN_MS = 30_000
/** Bound on the wait for the replicas to close their upstream connections once clients are gone. */
export const DRAIN_BOUND_MS = 15_000
const REDIS_DOWN_MS = 1_000
const READY_TIMEOUT_MS = 30_000
/** After both replicas report ready again, answers still count as overlapping the outage this long. */
const OUTAGE_GRACE_MS = 500

function gatewayConfig (redis: TestRedis, upstreams: SoakUpstreams): Record<string, unknown> {
  return {
    redis: { url: redis.url, keyPrefix: 'soak:' },
    admin: { token: ADMIN_TOKEN },
    sessions: { idleTimeout: `${IDLE_TIMEOUT_MS / 1000}s`, binding: { header: 'x-soak-principal' }, maxPerPrincipal: 0 },
    shutdownGrace: '2s',
    // A stream whose client left is read on until someone resumes it or `retention` passes
    // (docs/streams.md): short here, so that the drain at the end measures leaks, not retention.
    streams: { retention: '2s' },
    routes: [
      { path: '/legacy', upstream: upstreams.legacyUrl, upstreamEra: 'legacy', getStream: 'forward' },
      { path: '/bridged', upstream: upstreams.modernUrl, upstreamEra: 'modern', getStream: 'forward' }
    ]
  }
}

/** GET /readyz on a connection of its own, closed after the answer: no keep-alive is left behind to count. */
async function readiness (origin: string): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const request = get(`${origin}/readyz`, { agent: false, timeout: 2_000 }, (response) => {
      response.resume()
      response.once('end', () => resolve(response.statusCode ?? 0))
    })
    request.once('timeout', () => request.destroy(new Error('no answer from /readyz')))
    request.once('error', reject)
  })
}

async function ready (replicas: readonly GatewayReplica[]): Promise<void> {
  await eventually(async () => {
    for (const replica of replicas) if (await readiness(replica.origin) !== 200) return false
    return true
  }, { timeout: READY_TIMEOUT_MS, interval: 100, description: 'every replica to report /readyz 200' })
}

/** Stops Redis, starts it again on the same port (empty, as a restart without persistence). */
async function restartRedis (redis: TestRedis, replicas: readonly GatewayReplica[], ledger: SoakLedger): Promise<number> {
  const outage = { start: Date.now(), end: undefined as number | undefined }
  ledger.outages.push(outage)
  ledger.countFault(FAULTS.redisRestart)
  await redis.stop()
  await sleep(REDIS_DOWN_MS)
  await redis.start()
  await ready(replicas)
  outage.end = Date.now() + OUTAGE_GRACE_MS
  return outage.end - outage.start
}

export async function runSoak (options: SoakOptions): Promise<SoakResult> {
  const progress = options.progress ?? (() => undefined)
  const workers = options.workers ?? 8
  const ledger = new SoakLedger()
  const cleanups: Array<() => Promise<void>> = []
  try {
    const upstreams = await startSoakUpstreams()
    cleanups.push(async () => { await upstreams.close() })
    const redis = await startSoakRedis()
    cleanups.push(async () => { await redis.close() })
    const config = gatewayConfig(redis, upstreams)
    const replicas: GatewayReplica[] = []
    for (const name of ['A', 'B']) {
      const replica = await startGatewayReplica(name, config)
      cleanups.push(async () => { await replica.stop() })
      replicas.push(replica)
    }
    await ready(replicas)
    const pids = replicas.map((replica) => replica.pid)
    const memory = sampleMemory(pids)
    progress(`soak: redis ${redis.port}, replicas ${replicas.map((replica) => `${replica.name} ${replica.origin} (pid ${replica.pid})`).join(', ')}, ${options.seconds} s, seed ${options.seed}`)

    const stop = new AbortController()
    const started = Date.now()
    const duration = options.seconds * 1000
    const dispatcher = new Agent({ connections: 256 })
    cleanups.push(async () => { await dispatcher.destroy() })
    const context: ClientContext = { replicas, adminToken: ADMIN_TOKEN, ledger, signal: stop.signal, deadline: started + duration, dispatcher, idleTimeoutMs: IDLE_TIMEOUT_MS }
    const faultRandom = seededRandom(options.seed ^ 0x5eed)

    const restart = (async () => {
      await sleep(duration * 0.45)
      progress('soak: restarting Redis')
      const outageMs = await restartRedis(redis, replicas, ledger)
      progress(`soak: Redis back, replicas ready after ${outageMs} ms`)
      return outageMs
    })()
    const floods = (async () => {
      const every = Math.max(duration / 4, 5_000)
      await sleep(duration * 0.15)
      for (let index = 0; Date.now() < context.deadline; index++) {
        await initializeFlood(context, faultRandom, index)
        // Never past the deadline: a long soak's last pause would outlast the wind-down.
        await sleep(Math.max(0, Math.min(every, context.deadline - Date.now())))
      }
    })()
    const clients = Promise.all(Array.from({ length: workers }, async (_, index) => { await runWorker(context, options.seed, index) }))

    const ticker = setInterval(() => {
      const total = [...ledger.requests.values()].reduce((sum, count) => sum + count, 0)
      establishedConnections(pids, upstreams.ports).then((sockets) => {
        progress(`soak: ${Math.round((Date.now() - started) / 1000)} s, ${total} requests, RSS ${memory.ranges().map((range) => `${Math.round(range.end / 1024)} MiB`).join(' / ')}, ${sockets} upstream connections`)
      }, () => undefined)
    }, 10_000)
    let windDown: NodeJS.Timeout | undefined
    const bounded = new Promise<void>((resolve) => { windDown = setTimeout(resolve, duration + WIND_DOWN_MS) })
    const redisOutageMs = await Promise.race([Promise.all([clients, floods, restart]).then(([, , outageMs]) => outageMs), bounded.then(() => undefined)])
    clearTimeout(windDown)
    clearInterval(ticker)
    stop.abort()
    // Every client connection closes, idle keep-alive ones included: what the replicas still hold after that is theirs.
    await dispatcher.destroy()

    progress('soak: clients stopped, draining')
    const drainStarted = Date.now()
    const listenPorts = replicas.map((replica) => Number(new URL(replica.origin).port))
    let upstreamSocketsAtEnd = await establishedConnections(pids, upstreams.ports)
    let clientConnectionsAtEnd = await establishedConnections(pids, listenPorts, 'local')
    while ((upstreamSocketsAtEnd > 0 || clientConnectionsAtEnd > 0) && Date.now() - drainStarted < DRAIN_BOUND_MS) {
      await sleep(250)
      upstreamSocketsAtEnd = await establishedConnections(pids, upstreams.ports)
      clientConnectionsAtEnd = await establishedConnections(pids, listenPorts, 'local')
    }
    const drainMs = Date.now() - drainStarted
    const ranges = await memory.finish()
    // Stopped here rather than in the cleanup, to see whether each one finishes within its shutdown grace.
    const stopMs: number[] = []
    for (const replica of replicas) {
      const stopping = Date.now()
      await replica.stop()
      stopMs.push(Date.now() - stopping)
    }
    return {
      seconds: options.seconds,
      seed: options.seed,
      workers,
      ledger,
      replicas: replicas.map((replica, index) => ({ name: replica.name, memory: ranges[index] as MemoryRange, log: replica.log, stopMs: stopMs[index] as number })),
      upstreamSocketsAtEnd,
      clientConnectionsAtEnd,
      drainMs,
      redisOutageMs
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined)
  }
}
