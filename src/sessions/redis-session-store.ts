import { Redis } from 'ioredis'
import { GatewayError } from '../errors.js'
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

type RedisWithScripts = Redis & SessionScripts

export interface RedisSessionStoreOptions extends SessionTimeouts {
  readonly url: string
  readonly keyPrefix: string
  /** Milliseconds before a command is given up and the request answered 503. */
  readonly commandTimeout: number
  readonly connectTimeout: number
  /** Called on connection errors; ioredis keeps reconnecting by itself (jittered backoff). */
  readonly onConnectionError?: (error: Error) => void
}

export class RedisSessionStore implements SessionStore {
  readonly #redis: RedisWithScripts
  readonly #options: RedisSessionStoreOptions
  #closing: Promise<void> | undefined

  constructor (options: RedisSessionStoreOptions) {
    this.#options = options
    const redis = new Redis(options.url, {
      // Fail fast instead of queueing while disconnected: a request must get a 503 quickly, never
      // wait for an unknown time or be forwarded unchecked (issue #5, "503, then recovery").
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeout,
      connectTimeout: options.connectTimeout,
      lazyConnect: false
    })
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
        reject(new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { detail: `Redis not ready after ${this.#options.connectTimeout} ms` }))
      }, this.#options.connectTimeout)
      const onReady = (): void => { cleanup(); resolve() }
      const cleanup = (): void => { clearTimeout(timer); this.#redis.off('ready', onReady) }
      this.#redis.on('ready', onReady)
    })
  }

  #key (id: string): string {
    return `${this.#options.keyPrefix}session:${id}`
  }

  async create (id: string, data: SessionData): Promise<SessionRecord> {
    const createdAt = await this.#call(() => this.#redis.createSession(
      this.#key(id), this.#options.idleTimeout, this.#options.maxLifetime, data.route, data.protocolVersion,
      JSON.stringify(data.clientInfo ?? null), JSON.stringify(data.clientCapabilities ?? null)))
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

  async close (): Promise<void> {
    this.#closing ??= this.#redis.quit().then(() => undefined, () => { this.#redis.disconnect() })
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
