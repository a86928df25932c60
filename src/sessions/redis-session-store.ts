import type { ChainableCommander } from 'ioredis'
import type { RedisConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import { createRedisClient, type RedisClient } from './redis-client.js'
import type { LiveSession, SessionData, SessionRecord, SessionStore, SessionTimeouts } from './session-store.js'

/*
 * A session is one hash, `<prefix>session:<id>`, with short field names (memory per session is a
 * target, issue #7):
 *   r route · v protocol version · c created (ms) · d absolute deadline (ms) · i client info · k capabilities
 * The key's TTL is always min(idle timeout, time left until the deadline), so Redis itself forgets
 * the session at its end: nothing leaks when every gateway dies. Both scripts read the clock from
 * Redis TIME, so gateway instances with skewed clocks still agree. One key per script: Cluster-safe.
 */

/** Creates the session unless the key exists (an id collision: 2^-192, but never overwrite). */
const CREATE_SESSION_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local idle = tonumber(ARGV[1])
local lifetime = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'v', ARGV[4], 'i', ARGV[5], 'k', ARGV[6],
  'c', string.format('%.0f', now), 'd', string.format('%.0f', now + lifetime))
redis.call('PEXPIRE', KEYS[1], math.min(idle, lifetime))
return string.format('%.0f', now)
`

/**
 * Check and slide in one round trip. Returns { route, version, created }, or nil when the session
 * is gone. The client's info and capabilities stay in Redis: the hot path never decodes them.
 */
const TOUCH_SESSION_SCRIPT = `
local fields = redis.call('HMGET', KEYS[1], 'r', 'v', 'c', 'd')
if not fields[4] then return false end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local left = tonumber(fields[4]) - now
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), left))
return { fields[1], fields[2], fields[3] }
`

/** Deletes the session, only if it belongs to ARGV[1] when that is not empty. */
const TERMINATE_SESSION_SCRIPT = `
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'r') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`

interface SessionScripts {
  createSession (key: string, idleTimeout: number, maxLifetime: number, route: string, protocolVersion: string,
    clientInfo: string, clientCapabilities: string): Promise<string | null>
  touchSession (key: string, idleTimeout: number): Promise<[string, string, string] | null>
  terminateSession (key: string, route: string): Promise<number>
}

type RedisWithScripts = RedisClient & SessionScripts
type PipelineWithScripts = ChainableCommander & { createSession: (...args: Parameters<SessionScripts['createSession']>) => PipelineWithScripts }

export interface RedisSessionStoreOptions extends SessionTimeouts {
  readonly redis: RedisConfig
  /** Called on connection errors; ioredis keeps reconnecting by itself (jittered backoff). */
  readonly onConnectionError?: (error: Error) => void
}

export class RedisSessionStore implements SessionStore {
  readonly #redis: RedisWithScripts
  readonly #options: RedisSessionStoreOptions
  readonly #config: RedisConfig
  #closing: Promise<void> | undefined

  constructor (options: RedisSessionStoreOptions) {
    this.#options = options
    this.#config = options.redis
    const redis = createRedisClient(options.redis)
    redis.on('error', (error: Error) => options.onConnectionError?.(error))
    redis.defineCommand('createSession', { numberOfKeys: 1, lua: CREATE_SESSION_SCRIPT })
    redis.defineCommand('touchSession', { numberOfKeys: 1, lua: TOUCH_SESSION_SCRIPT })
    redis.defineCommand('terminateSession', { numberOfKeys: 1, lua: TERMINATE_SESSION_SCRIPT })
    this.#redis = redis as RedisWithScripts
  }

  /** Resolves when the connection is ready (or rejects after `connectTimeout`); used at start-up. */
  async ready (): Promise<void> {
    if (this.#redis.status === 'ready') return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup()
        reject(new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { detail: `Redis not ready after ${this.#config.connectTimeout} ms` }))
      }, this.#config.connectTimeout)
      const onReady = (): void => { cleanup(); resolve() }
      const cleanup = (): void => { clearTimeout(timer); this.#redis.off('ready', onReady) }
      this.#redis.on('ready', onReady)
    })
  }

  #key (id: string): string {
    return `${this.#config.keyPrefix}session:${id}`
  }

  /**
   * Creates the session. With `waitForReplicas`, the script and a WAIT go in one pipeline (one
   * round trip, to the key's master also on a Cluster): the id reaches the client only once that
   * many replicas have the session, so a failover right after initialize does not lose it.
   */
  async create (id: string, data: SessionData): Promise<SessionRecord> {
    const key = this.#key(id)
    const args = [key, this.#options.idleTimeout, this.#options.maxLifetime, data.route, data.protocolVersion,
      JSON.stringify(data.clientInfo ?? null), JSON.stringify(data.clientCapabilities ?? null)] as const
    const { waitForReplicas, waitTimeout } = this.#config
    let createdAt: string | null
    if (waitForReplicas === 0) {
      createdAt = await this.#call(() => this.#redis.createSession(...args))
    } else {
      const pipeline = (this.#redis.pipeline() as PipelineWithScripts).createSession(...args).wait(waitForReplicas, waitTimeout)
      const results = await this.#call(async () => await pipeline.exec())
      const [created, acknowledged] = results ?? []
      if (created?.[0] != null || acknowledged?.[0] != null) {
        throw new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { cause: created?.[0] ?? acknowledged?.[0] })
      }
      createdAt = created?.[1] as string | null
      if (createdAt !== null && (acknowledged?.[1] as number) < waitForReplicas) {
        // Not durable: never hand out an id a failover could forget.
        await this.#redis.del(key).catch(() => undefined)
        throw new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { detail: `${String(acknowledged?.[1])} of ${waitForReplicas} replicas acknowledged the new session within ${waitTimeout} ms` })
      }
    }
    if (createdAt === null) throw new GatewayError('MCPGW_INTERNAL_ERROR', { detail: 'session id collision' })
    return { ...data, id, createdAt: Number(createdAt) }
  }

  async touch (id: string): Promise<LiveSession | null> {
    const fields = await this.#call(() => this.#redis.touchSession(this.#key(id), this.#options.idleTimeout))
    if (fields === null) return null
    const [route, protocolVersion, createdAt] = fields
    return { id, route, protocolVersion, createdAt: Number(createdAt) }
  }

  async get (id: string): Promise<SessionRecord | null> {
    // The key's TTL already ends a session at min(idle, deadline): if the key exists, it is live.
    const fields = await this.#call(() => this.#redis.hgetall(this.#key(id)))
    return Object.keys(fields).length === 0 ? null : recordFromFields(id, fields)
  }

  async terminate (id: string, route?: string): Promise<boolean> {
    const deleted = await this.#call(() => this.#redis.terminateSession(this.#key(id), route ?? ''))
    return deleted === 1
  }

  isAvailable (): boolean {
    return this.#redis.status === 'ready'
  }

  /**
   * QUIT lets commands already sent finish; disconnect() then releases what QUIT leaves behind:
   * with Sentinel, ioredis keeps the failover detector's subscriptions open after QUIT (ioredis
   * #1362), which would keep the process alive. Bounded, so a dead Redis never blocks shutdown.
   */
  async close (): Promise<void> {
    this.#closing ??= (async () => {
      const quit = this.#redis.quit().catch(() => undefined)
      let timer: NodeJS.Timeout | undefined
      const bound = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#config.commandTimeout) })
      await Promise.race([quit, bound])
      clearTimeout(timer)
      this.#redis.disconnect()
    })()
    return await this.#closing
  }

  /** Every Redis failure (down, timeout, refused) becomes one coded 503 error. */
  async #call<T> (command: () => Promise<T>): Promise<T> {
    try {
      return await command()
    } catch (error) {
      throw new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { cause: error })
    }
  }
}

function parseStoredJson (text: string | undefined): unknown {
  if (text === undefined) return null
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}

function recordFromFields (id: string, fields: Record<string, string>): SessionRecord {
  return {
    id,
    route: fields.r ?? '',
    protocolVersion: fields.v ?? '',
    clientInfo: parseStoredJson(fields.i),
    clientCapabilities: parseStoredJson(fields.k),
    createdAt: Number(fields.c ?? 0)
  }
}
