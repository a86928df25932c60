import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { RedisConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import { parseListCursor } from './session-store.js'

/*
 * One ioredis client for the configured topology (docs/scaling.md): standalone (`redis://`, `rediss://` for
 * TLS, `user:password@` for ACL users), Cluster, or Sentinel. Common to all: no offline queue and no
 * per-request retries, so that while Redis is unreachable a request fails within `commandTimeout`
 * with a 503 and is never forwarded unchecked; ioredis reconnects by itself in the background.
 */

export type RedisClient = Redis | Cluster

function failFastOptions (config: RedisConfig): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: config.commandTimeout,
    connectTimeout: config.connectTimeout,
    // Concurrent requests' commands share one socket write (profiled: socket writes were the
    // gateway's largest CPU cost under load). Each request still makes exactly one round trip.
    enableAutoPipelining: true,
    // After a failover the old master may come back as a replica: a write answered READONLY means
    // "reconnect and find the master again" (the failed command itself is a 503).
    reconnectOnError: (error) => error.message.startsWith('READONLY')
  }
}

/** Credentials, database and TLS of a redis:// or rediss:// URL, as ioredis options. */
function optionsFromUrl (text: string): RedisOptions & { host: string, port: number } {
  const url = new URL(text)
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? 6379 : Number(url.port),
    ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
    ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {})
  }
}

export function createRedisClient (config: RedisConfig): RedisClient {
  const topology = config.topology
  switch (topology.kind) {
    case 'standalone':
      return new Redis({ ...optionsFromUrl(topology.url), ...failFastOptions(config) })
    case 'cluster': {
      const seeds = topology.nodes.map((node) => optionsFromUrl(node))
      const { host: _host, port: _port, db: _db, ...shared } = seeds[0] as ReturnType<typeof optionsFromUrl>
      const { enableOfflineQueue: _queue, ...perNode } = failFastOptions(config)
      return new Cluster(seeds.map(({ host, port }) => ({ host, port })), {
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        // MOVED/ASK redirections during resharding or failover are followed; CLUSTERDOWN is retried briefly.
        retryDelayOnClusterDown: 100,
        retryDelayOnFailover: 100,
        clusterRetryStrategy: (times) => Math.min(100 * times, 2_000),
        redisOptions: { ...shared, ...perNode }
      })
    }
    case 'sentinel':
      return new Redis({
        sentinels: topology.sentinels.map(({ host, port }) => ({ host, port })),
        name: topology.name,
        role: 'master',
        db: topology.db,
        ...(topology.username === undefined ? {} : { username: topology.username }),
        ...(topology.password === undefined ? {} : { password: topology.password }),
        ...(topology.sentinelUsername === undefined ? {} : { sentinelUsername: topology.sentinelUsername }),
        ...(topology.sentinelPassword === undefined ? {} : { sentinelPassword: topology.sentinelPassword }),
        ...(topology.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
        // Follow +switch-master at once instead of waiting for the old master's socket to fail.
        failoverDetector: true,
        sentinelRetryStrategy: (times) => Math.min(100 * times, 1_000),
        ...failFastOptions(config)
      })
  }
}

const SCAN_BATCH = 500
/**
 * `text` as a literal in a Redis glob pattern (KEYS, SCAN MATCH): `*`, `?`, `[`, `]` and `\` escaped,
 * so that an id or a key prefix never matches more than itself.
 */
export function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/** Keys matching `pattern`, with the cursor to resume from (undefined: the scan is complete). */
export type ScanPage = string[] & { cursor?: string | undefined }

/**
 * SCAN over the standalone server or every Cluster master, until at least `want` keys are found.
 * The cursor is `<master index>:<SCAN cursor>`. Admin operations only: never on the request path.
 */
export async function scanKeys (client: RedisClient, pattern: string, want: number, cursor?: string): Promise<ScanPage> {
  const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client]
  const start = cursor === undefined ? { node: 0, position: 0n } : parseListCursor(cursor)
  let nodeIndex = start.node
  let scanCursor = String(start.position)
  const keys: ScanPage = []
  while (nodeIndex < nodes.length && keys.length < want) {
    const [next, batch] = await (nodes[nodeIndex] as Redis).scan(scanCursor, 'MATCH', pattern, 'COUNT', SCAN_BATCH)
    keys.push(...batch)
    if (next === '0') {
      nodeIndex++
      scanCursor = '0'
    } else {
      scanCursor = next
    }
  }
  keys.cursor = nodeIndex < nodes.length ? `${nodeIndex}:${scanCursor}` : undefined
  return keys
}

/** Error reply prefixes Redis uses as codes (READONLY, OOM, LOADING, MOVED, ...): upper-case words. */
const REPLY_CODE = /^([A-Z][A-Z_]{1,31})\b/
const MAX_SUMMARY_LENGTH = 200

/**
 * What may be kept (and logged) of a Redis failure: its message and code, nothing else. An ioredis
 * reply error carries the command and its arguments (`command.args`: session keys, principal
 * hashes), and some messages quote them; the summary drops the command, blanks any argument the
 * message repeats, and keeps the first line only.
 */
export function redisFailureSummary (error: unknown): Error & { code?: string } {
  if (!(error instanceof Error)) return new Error('Redis failure')
  const args = (error as { command?: { args?: unknown } }).command?.args
  let message = (error.message.split('\n')[0] ?? '').slice(0, MAX_SUMMARY_LENGTH)
  if (Array.isArray(args)) {
    for (const arg of args) {
      const text = typeof arg === 'string' ? arg : Buffer.isBuffer(arg) ? arg.toString('utf8') : ''
      if (text.length >= 4) message = message.split(text).join('[redacted]')
    }
  }
  const ownCode = (error as { code?: unknown }).code
  const code = typeof ownCode === 'string' ? ownCode : REPLY_CODE.exec(message)?.[1]
  const summary = new Error(message)
  summary.name = error.name
  return code === undefined ? summary : Object.assign(summary, { code })
}

/**
 * Every Redis failure (down, timeout, refused, READONLY, OOM ...) becomes one coded 503 error.
 * Its cause keeps only the message and code: ioredis attaches the command and its arguments
 * (session keys, principal hashes), which must never reach a log (docs/operating.md, "Logs").
 */
export async function storeCommand<T> (command: () => Promise<T>): Promise<T> {
  try {
    return await command()
  } catch (error) {
    throw error instanceof GatewayError ? error : new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { cause: redisFailureSummary(error) })
  }
}

const REVIVE_FIRST_DELAY_MS = 200
const REVIVE_MAX_DELAY_MS = 5_000

/**
 * Starts the client again whenever ioredis gives up on it (status `end`) while we still need it.
 * ioredis ends a client for good when one connection attempt is aborted: with Sentinel, the failover
 * detector's reconnect (+switch-master) can abort an attempt that is still asking the sentinels,
 * which left the gateway answering 503 after every failover that hit the race (seen in CI). `end`
 * is not terminal for us: until the store is closed, we always come back.
 */
export function reviveWhenEnded (client: RedisClient, isClosing: () => boolean, onRevive: (attempt: number) => void): void {
  let attempt = 0
  let timer: NodeJS.Timeout | undefined
  client.on('ready', () => { attempt = 0 })
  client.on('end', () => {
    if (isClosing() || timer !== undefined) return
    attempt++
    timer = setTimeout(() => {
      timer = undefined
      if (isClosing() || client.status !== 'end') return
      onRevive(attempt)
      // A failed attempt ends the client again, and the 'end' handler schedules the next one.
      client.connect().catch(() => undefined)
    }, Math.min(REVIVE_FIRST_DELAY_MS * 2 ** (attempt - 1), REVIVE_MAX_DELAY_MS))
    timer.unref()
  })
}
