import { Cluster, type ChainableCommander } from 'ioredis'
import type { RedisConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import { parseJsonText } from '../mcp/json-rpc.js'
import { createRedisClient, reviveWhenEnded, scanKeys, type RedisClient } from './redis-client.js'
import { ChannelListeners } from './channel-listeners.js'
import { listenForExpiries, type ExpiryListener } from './redis-expiry-listener.js'
import { SESSION_ID_SOURCE } from './session-id.js'
import type {
  BridgeState, BridgeStateChange, ExpiryReason, ListSessionsOptions, LiveSession, RateLimitResult, SessionData, SessionPage, SessionRecord, SessionStore, SessionTimeouts
} from './session-store.js'

/*
 * Data model (docs/scaling.md, "Keys and scripts"). A session is one hash with short field names (memory per session is
 * a target, docs/performance.md):
 *   r route · v protocol version · c created (ms) · d absolute deadline (ms) · i client info ·
 *   k capabilities · p principal ('' when unbound) · and, only on a route bridged to a 2026-07-28
 *   upstream (docs/era-bridge.md): l log level · s:<uri> one field per subscribed resource
 * Unbound:  <prefix>session:<id>
 * Bound:    <prefix>session:{<principal>}:<id>, beside <prefix>principal:{<principal>}, a sorted set
 *           of that principal's session ids scored by their current expiry.
 * The hash tag keeps a principal's sessions and their index in one Cluster slot, so every script
 * below is atomic and Cluster-safe; and since the key is derived from the caller's principal, a
 * session asked for by anyone else simply does not exist (binding, docs/security.md).
 * The session key's TTL is always min(idle timeout, time left until the deadline): Redis forgets the
 * session at its end, nothing leaks when every gateway dies. Clocks come from Redis TIME, so gateway
 * instances with skewed clocks agree. Every script takes KEYS[1] = session, KEYS[2] = index (the
 * session key again when unbound).
 */

const NOW = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
`

/** ARGV: idle, lifetime, route, version, client info, capabilities, principal, maxPerPrincipal, id. */
const CREATE_SESSION_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {'COLLISION'} end
${NOW}
local bound = ARGV[7] ~= ''
if bound then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local limit = tonumber(ARGV[8])
  if limit > 0 and redis.call('ZCARD', KEYS[2]) >= limit then return {'LIMIT'} end
end
local lifetime = tonumber(ARGV[2])
local ttl = math.min(tonumber(ARGV[1]), lifetime)
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'v', ARGV[4], 'i', ARGV[5], 'k', ARGV[6], 'p', ARGV[7],
  'c', string.format('%.0f', now), 'd', string.format('%.0f', now + lifetime))
redis.call('PEXPIRE', KEYS[1], ttl)
if bound then
  redis.call('ZADD', KEYS[2], string.format('%.0f', now + ttl), ARGV[9])
  if redis.call('PTTL', KEYS[2]) < lifetime then redis.call('PEXPIRE', KEYS[2], lifetime) end
end
return {'OK', string.format('%.0f', now)}
`

/**
 * Check and slide in one round trip. ARGV: idle, principal, id, with-client ('1' or ''). Returns
 * { route, version, created[, every field and value] }, or nil when the session is gone or not
 * this principal's. The whole hash (client info, capabilities, bridge state) is only read for a route
 * that bridges to a modern upstream: the usual hot path never carries or decodes it.
 */
const TOUCH_SESSION_SCRIPT = `
local fields = redis.call('HMGET', KEYS[1], 'r', 'v', 'c', 'd', 'p')
if not fields[4] or (fields[5] or '') ~= ARGV[2] then return false end
${NOW}
local left = tonumber(fields[4]) - now
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return false
end
local ttl = math.min(tonumber(ARGV[1]), left)
redis.call('PEXPIRE', KEYS[1], ttl)
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], 'XX', string.format('%.0f', now + ttl), ARGV[3]) end
if ARGV[4] == '1' then
  local all = redis.call('HGETALL', KEYS[1])
  table.insert(all, 1, fields[3])
  table.insert(all, 1, fields[2])
  table.insert(all, 1, fields[1])
  return all
end
return { fields[1], fields[2], fields[3] }
`

/**
 * ARGV: principal, operation ('l' set the log level, '+' subscribe, '-' unsubscribe), value.
 * Returns 0 when the session is gone or not this principal's. Does not slide the idle timeout: the
 * request that changes the state was already checked (and slid) by touch.
 */
const UPDATE_BRIDGE_STATE_SCRIPT = `
local fields = redis.call('HMGET', KEYS[1], 'd', 'p')
if not fields[1] or (fields[2] or '') ~= ARGV[1] then return 0 end
if ARGV[2] == 'l' then redis.call('HSET', KEYS[1], 'l', ARGV[3])
elseif ARGV[2] == '+' then redis.call('HSET', KEYS[1], 's:' .. ARGV[3], '1')
else redis.call('HDEL', KEYS[1], 's:' .. ARGV[3]) end
return 1
`

/** ARGV: route ('' for any), principal, id. Ends the session only if route and principal match. */
const TERMINATE_SESSION_SCRIPT = `
local fields = redis.call('HMGET', KEYS[1], 'r', 'p')
if not fields[1] then return 0 end
if ARGV[1] ~= '' and fields[1] ~= ARGV[1] then return 0 end
if (fields[2] or '') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 1
`

/** A fixed window counter: ARGV window (ms). Returns { count, ms until reset }. */
const RATE_LIMIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { count, redis.call('PTTL', KEYS[1]) }
`

interface SessionScripts {
  createSession (session: string, index: string, ...args: Array<string | number>): Promise<[string, string?]>
  touchSession (session: string, index: string, idleTimeout: number, principal: string, id: string, withClient: string): Promise<string[] | null>
  updateBridgeState (session: string, principal: string, operation: 'l' | '+' | '-', value: string): Promise<number>
  terminateSession (session: string, index: string, route: string, principal: string, id: string): Promise<number>
  consumeRateLimit (key: string, windowMs: number): Promise<[number, number]>
}

type RedisWithScripts = RedisClient & SessionScripts
type PipelineWithScripts = ChainableCommander & { createSession: (...args: Parameters<SessionScripts['createSession']>) => PipelineWithScripts }

export interface RedisSessionStoreOptions extends SessionTimeouts {
  readonly redis: RedisConfig
  /** Called on connection errors; ioredis keeps reconnecting by itself (jittered backoff). */
  readonly onConnectionError?: (error: Error) => void
  /** Told when expiries cannot be counted (see redis-expiry-listener.ts). */
  readonly onExpiryEventsUnavailable?: (detail: string) => void
}

const SESSION_ID_SUFFIX = new RegExp(`(${SESSION_ID_SOURCE})$`)
const BOUND_SESSION_KEY = new RegExp(`session:\\{([^}]*)\\}:${SESSION_ID_SOURCE}$`)

export class RedisSessionStore implements SessionStore {
  readonly #redis: RedisWithScripts
  readonly #options: RedisSessionStoreOptions
  readonly #config: RedisConfig
  #closing: Promise<void> | undefined
  #expiryListener: Promise<ExpiryListener | undefined> | undefined
  /** The connection in subscriber mode for publish/subscribe, opened by the first subscribe. */
  #subscriber: RedisClient | undefined
  readonly #channels = new ChannelListeners()
  /** One SUBSCRIBE per channel, whoever listens to it. */
  readonly #subscriptions = new Map<string, Promise<void>>()

  constructor (options: RedisSessionStoreOptions) {
    this.#options = options
    this.#config = options.redis
    const redis = createRedisClient(options.redis)
    redis.on('error', (error: Error) => options.onConnectionError?.(error))
    reviveWhenEnded(redis, () => this.#closing !== undefined, (attempt) => {
      options.onConnectionError?.(new Error(`the Redis client gave up reconnecting; starting it again (attempt ${attempt})`))
    })
    redis.defineCommand('createSession', { numberOfKeys: 2, lua: CREATE_SESSION_SCRIPT })
    redis.defineCommand('touchSession', { numberOfKeys: 2, lua: TOUCH_SESSION_SCRIPT })
    redis.defineCommand('terminateSession', { numberOfKeys: 2, lua: TERMINATE_SESSION_SCRIPT })
    redis.defineCommand('consumeRateLimit', { numberOfKeys: 1, lua: RATE_LIMIT_SCRIPT })
    redis.defineCommand('updateBridgeState', { numberOfKeys: 1, lua: UPDATE_BRIDGE_STATE_SCRIPT })
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

  #sessionKey (id: string, principal: string | undefined): string {
    return principal === undefined ? `${this.#config.keyPrefix}session:${id}` : `${this.#config.keyPrefix}session:{${principal}}:${id}`
  }

  /** The principal's index, or the session key itself when unbound (scripts always take two keys). */
  #indexKey (id: string, principal: string | undefined): string {
    return principal === undefined ? this.#sessionKey(id, undefined) : `${this.#config.keyPrefix}principal:{${principal}}`
  }

  /**
   * Creates the session. With `waitForReplicas`, the script and a WAIT go in one pipeline (one
   * round trip, to the key's master also on a Cluster): the id reaches the client only once that
   * many replicas have the session, so a failover right after initialize does not lose it.
   */
  async create (id: string, data: SessionData): Promise<SessionRecord> {
    const key = this.#sessionKey(id, data.principal)
    const args = [key, this.#indexKey(id, data.principal), this.#options.idleTimeout, this.#options.maxLifetime, data.route, data.protocolVersion,
      JSON.stringify(data.clientInfo ?? null), JSON.stringify(data.clientCapabilities ?? null), data.principal ?? '',
      this.#options.maxPerPrincipal ?? 0, id] as const
    const { waitForReplicas, waitTimeout } = this.#config
    let outcome: [string, string?]
    if (waitForReplicas === 0) {
      outcome = await this.#call(() => this.#redis.createSession(...args))
    } else {
      const pipeline = (this.#redis.pipeline() as PipelineWithScripts).createSession(...args).wait(waitForReplicas, waitTimeout)
      const results = await this.#call(async () => await pipeline.exec())
      const [created, acknowledged] = results ?? []
      if (created?.[0] != null || acknowledged?.[0] != null) {
        throw new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { cause: created?.[0] ?? acknowledged?.[0] })
      }
      outcome = created?.[1] as [string, string?]
      if (outcome[0] === 'OK' && (acknowledged?.[1] as number) < waitForReplicas) {
        // Not durable: never hand out an id a failover could forget.
        await this.terminate(id, { route: data.route, principal: data.principal }).catch(() => false)
        throw new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { detail: `${String(acknowledged?.[1])} of ${waitForReplicas} replicas acknowledged the new session within ${waitTimeout} ms` })
      }
    }
    if (outcome[0] === 'LIMIT') throw new GatewayError('MCPGW_TOO_MANY_SESSIONS', { detail: `at most ${String(this.#options.maxPerPrincipal)}` })
    if (outcome[0] !== 'OK') throw new GatewayError('MCPGW_INTERNAL_ERROR', { detail: 'session id collision' })
    return { ...data, id, createdAt: Number(outcome[1]) }
  }

  async touch (id: string, principal?: string, options?: { readonly withClient?: boolean }): Promise<LiveSession | null> {
    const withClient = options?.withClient === true
    const fields = await this.#call(() => this.#redis.touchSession(this.#sessionKey(id, principal), this.#indexKey(id, principal), this.#options.idleTimeout, principal ?? '', id, withClient ? '1' : ''))
    if (fields === null) return null
    const [route = '', protocolVersion = '', createdAt] = fields
    const live = { id, route, protocolVersion, createdAt: Number(createdAt) }
    if (!withClient) return live
    const hash: Record<string, string> = {}
    for (let index = 3; index + 1 < fields.length; index += 2) hash[fields[index] as string] = fields[index + 1] as string
    return { ...live, clientInfo: parseStoredJson(hash.i), clientCapabilities: parseStoredJson(hash.k), bridge: bridgeStateFromFields(hash) }
  }

  async updateBridgeState (id: string, principal: string | undefined, change: BridgeStateChange): Promise<boolean> {
    const [operation, value] = 'logLevel' in change ? ['l', change.logLevel] as const : 'subscribe' in change ? ['+', change.subscribe] as const : ['-', change.unsubscribe] as const
    return await this.#call(() => this.#redis.updateBridgeState(this.#sessionKey(id, principal), principal ?? '', operation, value)) === 1
  }

  async publish (channel: string, message: string): Promise<void> {
    await this.#call(() => this.#redis.publish(this.#channelName(channel), message))
  }

  /**
   * One subscriber connection per store, shared by every channel; ioredis subscribes again by itself
   * after a reconnect. Classic PUBLISH reaches every node of a Cluster, so any node will do.
   */
  async subscribe (channel: string, listener: (message: string) => void): Promise<() => void> {
    const name = this.#channelName(channel)
    if (this.#subscriber === undefined) {
      const redis: RedisClient = this.#redis
      // Queues its SUBSCRIBE until connected (unlike the request path, nothing waits on it but a subscriber).
      const subscriber: RedisClient = redis instanceof Cluster ? redis.duplicate(undefined, { enableOfflineQueue: true }) : redis.duplicate({ enableOfflineQueue: true })
      subscriber.on('error', (error: Error) => this.#options.onConnectionError?.(error))
      // The same ioredis give-up as the main client's (see reviveWhenEnded); ioredis subscribes again once ready.
      reviveWhenEnded(subscriber, () => this.#closing !== undefined, (attempt) => {
        this.#options.onConnectionError?.(new Error(`the Redis subscriber gave up reconnecting; starting it again (attempt ${attempt})`))
      })
      subscriber.on('message', (from: string, message: string) => { this.#channels.deliver(from, message) })
      this.#subscriber = subscriber
    }
    let subscribed = this.#subscriptions.get(name)
    if (subscribed === undefined) {
      const subscribing = this.#call(async () => { await (this.#subscriber as RedisClient).subscribe(name) })
      subscribing.catch(() => { if (this.#subscriptions.get(name) === subscribing) this.#subscriptions.delete(name) })
      this.#subscriptions.set(name, subscribing)
      subscribed = subscribing
    }
    // Concurrent subscribers of a new channel all wait for the one SUBSCRIBE.
    await subscribed
    const remove = this.#channels.add(name, listener)
    return () => {
      if (!remove()) return
      this.#subscriptions.delete(name)
      this.#subscriber?.unsubscribe(name).catch(() => undefined)
    }
  }

  #channelName (channel: string): string {
    return `${this.#config.keyPrefix}bridge:${channel}`
  }

  async terminate (id: string, owner: { readonly route: string, readonly principal?: string | undefined }): Promise<boolean> {
    const deleted = await this.#call(() => this.#redis.terminateSession(
      this.#sessionKey(id, owner.principal), this.#indexKey(id, owner.principal), owner.route, owner.principal ?? '', id))
    return deleted === 1
  }

  /** Admin: the key of a session whoever owns it. Bound keys carry the principal: found by a SCAN. */
  async #findKey (id: string): Promise<string | undefined> {
    const unbound = this.#sessionKey(id, undefined)
    if (await this.#call(() => this.#redis.exists(unbound)) === 1) return unbound
    const found = await this.#call(async () => await scanKeys(this.#redis, `${this.#config.keyPrefix}session:{*}:${id}`, 1))
    return found[0]
  }

  /** The session stored under `key`, or null when the key is gone. */
  async #readRecord (key: string, id: string): Promise<SessionRecord | null> {
    const fields = await this.#call(() => this.#redis.hgetall(key))
    return Object.keys(fields).length === 0 ? null : recordFromFields(id, fields)
  }

  async get (id: string): Promise<SessionRecord | null> {
    const key = await this.#findKey(id)
    return key === undefined ? null : await this.#readRecord(key, id)
  }

  async terminateAny (id: string): Promise<boolean> {
    const key = await this.#findKey(id)
    if (key === undefined) return false
    const principal = BOUND_SESSION_KEY.exec(key)?.[1]
    return await this.#call(async () => await this.#redis.terminateSession(key, this.#indexKey(id, principal), '', principal ?? '', id)) === 1
  }

  async terminatePrincipal (principal: string, onEnded?: (id: string) => void): Promise<number> {
    const ids = await this.#call(() => this.#redis.zrange(this.#indexKey('', principal), '0', '-1'))
    let ended = 0
    for (const id of ids) {
      if (!await this.terminate(id, { route: '', principal })) continue
      ended++
      onEnded?.(id)
    }
    return ended
  }

  async list (options: ListSessionsOptions): Promise<SessionPage> {
    // The keys to read: from the principal's index, or from a SCAN, which already names each key.
    let keys: Array<{ key: string, id: string }>
    let nextCursor: string | undefined
    if (options.principal !== undefined) {
      const principal = options.principal
      const offset = Number(options.cursor ?? 0)
      const ids = await this.#call(() => this.#redis.zrange(this.#indexKey('', principal), String(offset), String(offset + options.limit - 1)))
      nextCursor = ids.length === options.limit ? String(offset + options.limit) : undefined
      keys = ids.map((id) => ({ key: this.#sessionKey(id, principal), id }))
    } else {
      const scanned = await this.#call(async () => await scanKeys(this.#redis, `${this.#config.keyPrefix}session:*`, options.limit, options.cursor))
      nextCursor = scanned.cursor
      keys = scanned.flatMap((key) => {
        const id = SESSION_ID_SUFFIX.exec(key)?.[1]
        return id === undefined ? [] : [{ key, id }]
      })
    }
    const sessions: SessionRecord[] = []
    for (const { key, id } of keys) {
      const record = await this.#readRecord(key, id)
      if (record !== null && (options.route === undefined || record.route === options.route)) sessions.push(record)
    }
    return { sessions, nextCursor }
  }

  async consumeRateLimit (key: string, limit: number, windowMs: number): Promise<RateLimitResult> {
    const [count, resetInMs] = await this.#call(() => this.#redis.consumeRateLimit(`${this.#config.keyPrefix}ratelimit:{${key}}`, windowMs))
    return { allowed: count <= limit, resetInMs: Math.max(0, resetInMs) }
  }

  onExpired (listener: (reason: ExpiryReason, id: string) => void): void {
    this.#expiryListener = this.ready().then(async () => await listenForExpiries({
      client: this.#redis,
      keyPrefix: this.#config.keyPrefix,
      maxLifetime: this.#options.maxLifetime,
      idleTimeout: this.#options.idleTimeout,
      onExpired: listener,
      onUnavailable: (detail) => this.#options.onExpiryEventsUnavailable?.(detail)
    })).catch((error: unknown) => {
      this.#options.onExpiryEventsUnavailable?.(`cannot subscribe to expiry events: ${(error as Error).message}`)
      return undefined
    })
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
      (await this.#expiryListener)?.close()
      this.#subscriber?.disconnect()
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

/** Stored client JSON; null when absent or unreadable (it was written by us, so that is never expected). */
function parseStoredJson (text: string | undefined): unknown {
  return text === undefined ? null : parseJsonText(text) ?? null
}

function bridgeStateFromFields (fields: Record<string, string>): BridgeState {
  const resourceSubscriptions = Object.keys(fields).filter((name) => name.startsWith('s:')).map((name) => name.slice(2))
  return { resourceSubscriptions, ...(fields.l === undefined ? {} : { logLevel: fields.l }) }
}

function recordFromFields (id: string, fields: Record<string, string>): SessionRecord {
  return {
    id,
    route: fields.r ?? '',
    protocolVersion: fields.v ?? '',
    clientInfo: parseStoredJson(fields.i),
    clientCapabilities: parseStoredJson(fields.k),
    createdAt: Number(fields.c ?? 0),
    ...(fields.p === undefined || fields.p === '' ? {} : { principal: fields.p })
  }
}
