import { Cluster, type ChainableCommander } from 'ioredis'
import type { RedisConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import { parseJsonText } from '../mcp/json-rpc.js'
import { RedisStreamEventStore } from '../streams/redis-stream-event-store.js'
import type { StreamEventStore, StreamEventStoreLimits } from '../streams/stream-event-store.js'
import { createRedisClient, escapeGlob, redisFailureSummary, reviveWhenEnded, scanKeys, storeCommand, type RedisClient } from './redis-client.js'
import { ChannelListeners } from './channel-listeners.js'
import { listenForExpiries, type ExpiryListener } from './redis-expiry-listener.js'
import { channelName, indexKey, sessionKey, sessionKeyParser, upstreamCountsKey, upstreamSessionKey } from './redis-keys.js'
import { SESSION_ID_SOURCE } from './session-id.js'
import {
  parseListCursor, type BridgeState, type BridgeStateChange, type ListSessionsOptions, type LiveSession, type RateLimitResult, type SessionData, type SessionPage,
  type SessionRecord, type SessionStore, type SessionTimeouts, type StoreEndListener, type EndedUpstreamSession, type UpstreamSessionRef, UPSTREAM_GRACE_MS
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

/**
 * What a script returns of a session it removes while `waitForReplicas` is set, so that the gateway
 * can put it back when the replicas do not acknowledge the removal: { absolute expiry (ms), field,
 * value, ... }. Needs `now`.
 */
const SNAPSHOT = `
local function snapshot(key)
  local all = redis.call('HGETALL', key)
  table.insert(all, 1, string.format('%.0f', now + redis.call('PTTL', key)))
  return all
end
`

/**
 * ARGV: idle, lifetime, route, version, client info, capabilities, principal, maxPerPrincipal, id,
 * policy ('refuse' or 'evictOldest'), snapshot ('1' or ''), and on a stateful route (else '')
 * upstream instance, upstream session id, the ended-session record (KEYS[3]), its grace past the
 * lifetime (ms). Returns { 'OK', created, then per
 * evicted session: its id and (with snapshot) its snapshot, else '' }.
 * Eviction ends the principal's oldest sessions (by creation, Redis clock) until the new one fits;
 * their keys are not among KEYS but share the index's hash tag, so they live in the same slot.
 */
const CREATE_SESSION_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {'COLLISION'} end
${NOW}
${SNAPSHOT}
local bound = ARGV[7] ~= ''
local evicted = {}
if bound then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local limit = tonumber(ARGV[8])
  if limit > 0 and redis.call('ZCARD', KEYS[2]) >= limit then
    if ARGV[10] ~= 'evictOldest' then return {'LIMIT'} end
    local sessions = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[9])
    local held = {}
    for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      local created = redis.call('HGET', sessions .. id, 'c')
      if created then table.insert(held, { tonumber(created), id }) else redis.call('ZREM', KEYS[2], id) end
    end
    table.sort(held, function (a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    local index = 1
    while #held - index + 1 >= limit do
      local id = held[index][2]
      table.insert(evicted, id)
      table.insert(evicted, ARGV[11] == '1' and snapshot(sessions .. id) or '')
      redis.call('DEL', sessions .. id)
      redis.call('ZREM', KEYS[2], id)
      index = index + 1
    end
  end
end
local lifetime = tonumber(ARGV[2])
local ttl = math.min(tonumber(ARGV[1]), lifetime)
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'v', ARGV[4], 'i', ARGV[5], 'k', ARGV[6], 'p', ARGV[7],
  'c', string.format('%.0f', now), 'd', string.format('%.0f', now + lifetime))
redis.call('PEXPIRE', KEYS[1], ttl)
if ARGV[12] ~= '' then
  redis.call('HSET', KEYS[1], 'n', ARGV[12], 'u', ARGV[13])
  redis.call('SET', KEYS[3], ARGV[14], 'PX', lifetime + tonumber(ARGV[15]))
end
if bound then
  redis.call('ZADD', KEYS[2], string.format('%.0f', now + ttl), ARGV[9])
  if redis.call('PTTL', KEYS[2]) < lifetime then redis.call('PEXPIRE', KEYS[2], lifetime) end
end
local result = {'OK', string.format('%.0f', now)}
for _, value in ipairs(evicted) do table.insert(result, value) end
return result
`

/**
 * Check and slide in one round trip. ARGV: idle, principal, id, with-client ('1' or ''). Returns
 * { route, version, created, upstream instance, upstream session[, every field and value] } (the
 * upstream pair '' unless the route is stateful), or nil when the session is gone or not this
 * principal's. The whole hash (client info, capabilities, bridge state) is only read for a route
 * that bridges to a modern upstream or replays a stateful one: the usual hot path never carries or
 * decodes it.
 */
const TOUCH_SESSION_SCRIPT = `
local fields = redis.call('HMGET', KEYS[1], 'r', 'v', 'c', 'd', 'p', 'n', 'u')
if not fields[4] or (fields[5] or '') ~= ARGV[2] then return false end
${NOW}
local left = tonumber(fields[4]) - now
if left <= 0 then
  -- Past its lifetime a moment before Redis expired it: expired now, not deleted, so that the
  -- replicas hear of the end as of any expiry (a DEL publishes no "expired" event).
  redis.call('PEXPIRE', KEYS[1], 1)
  return false
end
local ttl = math.min(tonumber(ARGV[1]), left)
redis.call('PEXPIRE', KEYS[1], ttl)
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], 'XX', string.format('%.0f', now + ttl), ARGV[3]) end
local live = { fields[1], fields[2], fields[3], fields[6] or '', fields[7] or '' }
if ARGV[4] == '1' then
  for _, value in ipairs(redis.call('HGETALL', KEYS[1])) do table.insert(live, value) end
end
return live
`

/**
 * Moves a session to another upstream session if it is still on the expected one (racing replicas:
 * the first wins, the others read its result). KEYS: session, ended-session record. ARGV: principal,
 * expected instance, expected session, new instance, new session, grace (ms). Returns { won (1 or
 * 0), instance, session, route } afterwards, or nil when the session is gone.
 */
const SWAP_UPSTREAM_SCRIPT = `
local fields = redis.call('HMGET', KEYS[1], 'd', 'p', 'n', 'u', 'r')
if not fields[1] or (fields[2] or '') ~= ARGV[1] then return false end
if (fields[3] or '') ~= ARGV[2] or (fields[4] or '') ~= ARGV[3] then return { 0, fields[3] or '', fields[4] or '', fields[5] } end
redis.call('HSET', KEYS[1], 'n', ARGV[4], 'u', ARGV[5])
redis.call('SET', KEYS[2], cjson.encode({ r = fields[5], n = ARGV[4], u = ARGV[5] }))
redis.call('PEXPIREAT', KEYS[2], tonumber(fields[1]) + tonumber(ARGV[6]))
return { 1, ARGV[4], ARGV[5], fields[5] }
`

/** Hands out an ended session's upstream record once. KEYS: session, record. Nil while the session lives. */
const TAKE_UPSTREAM_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local record = redis.call('GET', KEYS[2])
if record then redis.call('DEL', KEYS[2]) end
return record
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

/**
 * ARGV: route ('' for any), principal, id, snapshot ('1' or ''). Ends the session only if route and
 * principal match. Returns 0 when nothing was ended, else 1 or (with snapshot) its snapshot.
 */
const TERMINATE_SESSION_SCRIPT = `
local fields = redis.call('HMGET', KEYS[1], 'r', 'p')
if not fields[1] then return 0 end
if ARGV[1] ~= '' and fields[1] ~= ARGV[1] then return 0 end
if (fields[2] or '') ~= ARGV[2] then return 0 end
${NOW}
${SNAPSHOT}
local ended = ARGV[4] == '1' and snapshot(KEYS[1]) or 1
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return ended
`

/**
 * Puts back a session whose removal the replicas did not acknowledge (see SNAPSHOT), with its own
 * expiry, unless it has expired meanwhile. ARGV: principal, id, then the snapshot.
 */
const RESTORE_SESSION_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
${NOW}
local expiresAt = tonumber(ARGV[3])
if expiresAt <= now then return 0 end
local deadline = expiresAt
for index = 4, #ARGV - 1, 2 do
  redis.call('HSET', KEYS[1], ARGV[index], ARGV[index + 1])
  if ARGV[index] == 'd' then deadline = tonumber(ARGV[index + 1]) end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  if redis.call('PTTL', KEYS[2]) < deadline - now then redis.call('PEXPIRE', KEYS[2], deadline - now) end
end
return 1
`

/** A fixed window counter: ARGV window (ms). Returns { count, ms until reset }. */
const RATE_LIMIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { count, redis.call('PTTL', KEYS[1]) }
`

interface SessionScripts {
  createSession (session: string, index: string, ...args: Array<string | number>): Promise<Array<string | string[]>>
  touchSession (session: string, index: string, idleTimeout: number, principal: string, id: string, withClient: string): Promise<string[] | null>
  updateBridgeState (session: string, principal: string, operation: 'l' | '+' | '-', value: string): Promise<number>
  terminateSession (session: string, index: string, route: string, principal: string, id: string, snapshot: '1' | ''): Promise<Ended>
  restoreSession (session: string, index: string, principal: string, id: string, ...snapshot: string[]): Promise<number>
  consumeRateLimit (key: string, windowMs: number): Promise<[number, number]>
  swapUpstream (session: string, record: string, principal: string, ...args: string[]): Promise<[number, string, string, string] | null>
  takeUpstream (session: string, record: string): Promise<string | null>
}

/** What a removing script answers per session: 0 nothing removed, 1 removed, or its snapshot (see SNAPSHOT). */
type Ended = 0 | 1 | string[]

type RedisWithScripts = RedisClient & SessionScripts
type PipelineWithScripts = ChainableCommander & {
  createSession: (...args: Parameters<SessionScripts['createSession']>) => PipelineWithScripts
  terminateSession: (...args: Parameters<SessionScripts['terminateSession']>) => PipelineWithScripts
}

/** A session to end: its keys, and who must own it. */
interface EndTarget {
  readonly key: string
  readonly index: string
  readonly principal: string
  readonly id: string
}

export interface RedisSessionStoreOptions extends SessionTimeouts {
  readonly redis: RedisConfig
  /** Called on connection errors; ioredis keeps reconnecting by itself (jittered backoff). */
  readonly onConnectionError?: (error: Error) => void
  /** Told when expiries cannot be counted (see redis-expiry-listener.ts). */
  readonly onExpiryEventsUnavailable?: (detail: string) => void
}

const SESSION_ID_SUFFIX = new RegExp(`(${SESSION_ID_SOURCE})$`)

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
  /** Told of evictions (expiries come from the expiry listener). */
  readonly #endListeners: StoreEndListener[] = []
  readonly #parseSessionKey: ReturnType<typeof sessionKeyParser>

  constructor (options: RedisSessionStoreOptions) {
    this.#options = options
    this.#config = options.redis
    this.#parseSessionKey = sessionKeyParser(options.redis.keyPrefix)
    const redis = createRedisClient(options.redis)
    redis.on('error', (error: Error) => options.onConnectionError?.(error))
    reviveWhenEnded(redis, () => this.#closing !== undefined, (attempt) => {
      options.onConnectionError?.(new Error(`the Redis client gave up reconnecting; starting it again (attempt ${attempt})`))
    })
    redis.defineCommand('createSession', { numberOfKeys: 3, lua: CREATE_SESSION_SCRIPT })
    redis.defineCommand('swapUpstream', { numberOfKeys: 2, lua: SWAP_UPSTREAM_SCRIPT })
    redis.defineCommand('takeUpstream', { numberOfKeys: 2, lua: TAKE_UPSTREAM_SCRIPT })
    redis.defineCommand('touchSession', { numberOfKeys: 2, lua: TOUCH_SESSION_SCRIPT })
    redis.defineCommand('terminateSession', { numberOfKeys: 2, lua: TERMINATE_SESSION_SCRIPT })
    redis.defineCommand('restoreSession', { numberOfKeys: 2, lua: RESTORE_SESSION_SCRIPT })
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
    return sessionKey(this.#config.keyPrefix, id, principal)
  }

  #indexKey (id: string, principal: string | undefined): string {
    return indexKey(this.#config.keyPrefix, id, principal)
  }

  /**
   * The events of the sessions' resumable streams, on the same client (each append checks its
   * session in the same script) and told through this store's one subscriber connection.
   */
  streamEvents (limits: StreamEventStoreLimits): StreamEventStore {
    return new RedisStreamEventStore({
      client: this.#redis,
      keyPrefix: this.#config.keyPrefix,
      limits,
      subscribe: async (channel, listener) => await this.subscribe(channel, listener)
    })
  }

  /**
   * Creates the session. With `waitForReplicas`, the script and a WAIT go in one pipeline (one
   * round trip, to the key's master also on a Cluster): the id reaches the client only once that
   * many replicas have the session, so a failover right after initialize does not lose it. An
   * eviction made room in the same script, so the same WAIT covers it; unacknowledged, the whole
   * creation is undone: the new session removed, the evicted ones put back.
   */
  async create (id: string, data: SessionData): Promise<SessionRecord> {
    const key = this.#sessionKey(id, data.principal)
    const index = this.#indexKey(id, data.principal)
    const { waitForReplicas, waitTimeout } = this.#config
    const upstream = data.upstream
    const args = [key, index, this.#upstreamKey(id, data.principal), this.#options.idleTimeout, this.#options.maxLifetime, data.route, data.protocolVersion,
      JSON.stringify(data.clientInfo ?? null), JSON.stringify(data.clientCapabilities ?? null), data.principal ?? '',
      this.#options.maxPerPrincipal ?? 0, id, this.#options.maxPerPrincipalPolicy ?? 'refuse', waitForReplicas > 0 ? '1' : '',
      upstream?.instance ?? '', upstream?.sessionId ?? '', upstream === undefined ? '' : endedRecord(data.route, upstream), UPSTREAM_GRACE_MS] as const
    let outcome: Array<string | string[]>
    if (waitForReplicas === 0) {
      outcome = await this.#call(() => this.#redis.createSession(...args))
    } else {
      const pipeline = (this.#redis.pipeline() as PipelineWithScripts).createSession(...args).wait(waitForReplicas, waitTimeout)
      const results = await this.#call(async () => await pipeline.exec())
      const [created, acknowledged] = results ?? []
      const failure = created?.[0] ?? acknowledged?.[0]
      if (failure != null) throw new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { cause: redisFailureSummary(failure) })
      outcome = created?.[1] as Array<string | string[]>
      if (outcome[0] === 'OK' && (acknowledged?.[1] as number) < waitForReplicas) {
        // Not durable: never hand out an id a failover could forget, nor end others for it.
        await this.#call(() => this.#redis.terminateSession(key, index, data.route, data.principal ?? '', id, '')).catch(() => 0)
        await this.#restore(evictedOf(outcome).map(({ id: evicted, snapshot }) => ({ target: this.#target(evicted, data.principal), snapshot })))
        throw new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { detail: `${String(acknowledged?.[1])} of ${waitForReplicas} replicas acknowledged the new session within ${waitTimeout} ms` })
      }
    }
    if (outcome[0] === 'LIMIT') throw new GatewayError('MCPGW_TOO_MANY_SESSIONS', { detail: `at most ${String(this.#options.maxPerPrincipal)}` })
    if (outcome[0] !== 'OK') throw new GatewayError('MCPGW_INTERNAL_ERROR', { detail: 'session id collision' })
    if (upstream !== undefined) this.#countUpstream(data.route, [[upstream.instance, 1]])
    for (const { id: evicted } of evictedOf(outcome)) {
      for (const listener of this.#endListeners) listener('evicted', evicted, data.principal)
    }
    return { ...data, id, createdAt: Number(outcome[1]) }
  }

  #upstreamKey (id: string, principal: string | undefined): string {
    return upstreamSessionKey(this.#config.keyPrefix, id, principal)
  }

  /**
   * The per-instance counts behind `balance: leastSessions`: changed after the session changes, not
   * in its script (they live in another Cluster slot). Not awaited: a count off by one while Redis
   * fails only places one session less evenly.
   */
  #countUpstream (route: string, changes: ReadonlyArray<readonly [string, number]>): void {
    const key = upstreamCountsKey(this.#config.keyPrefix, route)
    for (const [instance, delta] of changes) this.#redis.hincrby(key, instance, delta).catch(() => undefined)
  }

  async swapUpstream (id: string, principal: string | undefined, from: UpstreamSessionRef, to: UpstreamSessionRef): Promise<UpstreamSessionRef | null> {
    const answer = await this.#call(() => this.#redis.swapUpstream(this.#sessionKey(id, principal), this.#upstreamKey(id, principal), principal ?? '',
      from.instance, from.sessionId, to.instance, to.sessionId, String(UPSTREAM_GRACE_MS)))
    if (answer === null) return null
    const [won, instance, sessionId, route] = answer
    if (won === 1) this.#countUpstream(route, [[from.instance, -1], [to.instance, 1]])
    return { instance, sessionId }
  }

  async takeUpstream (id: string, principal: string | undefined): Promise<EndedUpstreamSession | null> {
    const record = await this.#call(() => this.#redis.takeUpstream(this.#sessionKey(id, principal), this.#upstreamKey(id, principal)))
    const ended = record === null ? null : parseEndedRecord(record)
    if (ended !== null) this.#countUpstream(ended.route, [[ended.upstream.instance, -1]])
    return ended
  }

  async upstreamSessionCounts (route: string): Promise<Map<string, number>> {
    const counts = await this.#call(() => this.#redis.hgetall(upstreamCountsKey(this.#config.keyPrefix, route)))
    return new Map(Object.entries(counts).map(([instance, count]) => [instance, Math.max(0, Number(count))]))
  }

  async touch (id: string, principal?: string, options?: { readonly withClient?: boolean }): Promise<LiveSession | null> {
    const withClient = options?.withClient === true
    const fields = await this.#call(() => this.#redis.touchSession(this.#sessionKey(id, principal), this.#indexKey(id, principal), this.#options.idleTimeout, principal ?? '', id, withClient ? '1' : ''))
    if (fields === null) return null
    const [route = '', protocolVersion = '', createdAt, instance = '', upstreamSession = ''] = fields
    const live: LiveSession = { id, route, protocolVersion, createdAt: Number(createdAt), ...(instance === '' ? {} : { upstream: { instance, sessionId: upstreamSession } }) }
    if (!withClient) return live
    const hash: Record<string, string> = {}
    for (let index = 5; index + 1 < fields.length; index += 2) hash[fields[index] as string] = fields[index + 1] as string
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
    return channelName(this.#config.keyPrefix, channel)
  }

  async terminate (id: string, owner: { readonly route: string, readonly principal?: string | undefined }): Promise<boolean> {
    return (await this.#end([this.#target(id, owner.principal)], owner.route)).length === 1
  }

  #target (id: string, principal: string | undefined): EndTarget {
    return { key: this.#sessionKey(id, principal), index: this.#indexKey(id, principal), principal: principal ?? '', id }
  }

  /**
   * Ends the sessions that are still there (and `route`'s, unless ''); resolves with their ids, each
   * also told to `onEnded` as it ends. With `waitForReplicas`, all of them and a WAIT go in one
   * pipeline (one slot: one session, or one principal's): an end counts only once that many
   * replicas have it, else every one of them is put back and MCPGW_TERMINATION_UNACKNOWLEDGED thrown,
   * so that a failover cannot bring back a session its client was told had ended.
   */
  async #end (targets: readonly EndTarget[], route: string, onEnded?: (id: string) => void): Promise<string[]> {
    const ended: string[] = []
    const { waitForReplicas, waitTimeout } = this.#config
    if (waitForReplicas === 0) {
      for (const target of targets) {
        if (await this.#call(() => this.#redis.terminateSession(target.key, target.index, route, target.principal, target.id, '')) === 0) continue
        ended.push(target.id)
        onEnded?.(target.id)
      }
      return ended
    }
    if (targets.length === 0) return ended
    const pipeline = this.#redis.pipeline() as PipelineWithScripts
    for (const target of targets) pipeline.terminateSession(target.key, target.index, route, target.principal, target.id, '1')
    pipeline.wait(waitForReplicas, waitTimeout)
    const results = await this.#call(async () => await pipeline.exec()) ?? []
    const removed = targets.flatMap((target, index) => {
      const [error, snapshot] = results[index] ?? []
      return error == null && Array.isArray(snapshot) ? [{ target, snapshot: snapshot as string[] }] : []
    })
    const failure = results.find(([error]) => error != null)?.[0]
    const acknowledged = results[targets.length]?.[1] as number | undefined
    if (failure != null || (removed.length > 0 && (acknowledged ?? 0) < waitForReplicas)) {
      await this.#restore(removed)
      if (failure != null) throw new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE', { cause: redisFailureSummary(failure) })
      throw new GatewayError('MCPGW_TERMINATION_UNACKNOWLEDGED', { detail: `${String(acknowledged)} of ${waitForReplicas} replicas acknowledged within ${waitTimeout} ms` })
    }
    for (const { target } of removed) {
      ended.push(target.id)
      onEnded?.(target.id)
    }
    return ended
  }

  /**
   * Puts back sessions whose end was not acknowledged. Best effort: a master that cannot take it
   * has lost the session anyway, and the caller is already answering 503.
   */
  async #restore (removed: ReadonlyArray<{ readonly target: EndTarget, readonly snapshot: readonly string[] }>): Promise<void> {
    for (const { target, snapshot } of removed) {
      if (snapshot.length === 0) continue
      await this.#call(() => this.#redis.restoreSession(target.key, target.index, target.principal, target.id, ...snapshot)).catch(() => 0)
    }
  }

  /** Admin: the key of a session whoever owns it. Bound keys carry the principal: found by a SCAN. */
  async #findKey (id: string): Promise<string | undefined> {
    const unbound = this.#sessionKey(id, undefined)
    if (await this.#call(() => this.#redis.exists(unbound)) === 1) return unbound
    // The id is matched literally: a glob character in it must not match other sessions.
    const found = await this.#call(async () => await scanKeys(this.#redis, `${escapeGlob(this.#config.keyPrefix)}session:{*}:${escapeGlob(id)}`, 1))
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
    const principal = this.#parseSessionKey(key)?.principal
    return (await this.#end([{ key, index: this.#indexKey(id, principal), principal: principal ?? '', id }], '')).length === 1
  }

  async terminatePrincipal (principal: string, onEnded?: (id: string) => void): Promise<number> {
    const ids = await this.#call(() => this.#redis.zrange(this.#indexKey('', principal), '0', '-1'))
    return (await this.#end(ids.map((id) => this.#target(id, principal)), '', onEnded)).length
  }

  async list (options: ListSessionsOptions): Promise<SessionPage> {
    // The keys to read: from the principal's index, or from a SCAN, which already names each key.
    let keys: Array<{ key: string, id: string }>
    let nextCursor: string | undefined
    if (options.principal !== undefined) {
      const principal = options.principal
      // The same cursor shape as a SCAN's (see LIST_CURSOR_PATTERN): node 0, an offset in the index.
      const offset = options.cursor === undefined ? 0n : parseListCursor(options.cursor).position
      const ids = await this.#call(() => this.#redis.zrange(this.#indexKey('', principal), String(offset), String(offset + BigInt(options.limit - 1))))
      nextCursor = ids.length === options.limit ? `0:${offset + BigInt(options.limit)}` : undefined
      keys = ids.map((id) => ({ key: this.#sessionKey(id, principal), id }))
    } else {
      const scanned = await this.#call(async () => await scanKeys(this.#redis, `${escapeGlob(this.#config.keyPrefix)}session:*`, options.limit, options.cursor))
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

  onExpired (listener: StoreEndListener): void {
    this.#endListeners.push(listener)
    this.#expiryListener = this.ready().then(async () => await listenForExpiries({
      client: this.#redis,
      keyPrefix: this.#config.keyPrefix,
      maxLifetime: this.#options.maxLifetime,
      idleTimeout: this.#options.idleTimeout,
      onExpired: listener,
      onUnavailable: (detail) => this.#options.onExpiryEventsUnavailable?.(detail)
    })).catch((error: unknown) => {
      this.#options.onExpiryEventsUnavailable?.(`cannot subscribe to expiry events: ${redisFailureSummary(error).message}`)
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

  /** Any Redis failure becomes MCPGW_SESSION_STORE_UNAVAILABLE, its cause redacted (see storeCommand). */
  async #call<T> (command: () => Promise<T>): Promise<T> {
    return await storeCommand(command)
  }
}

/** Stored client JSON; null when absent or unreadable (it was written by us, so that is never expected). */
/** The sessions `create` evicted: id and snapshot pairs after { 'OK', created }. */
function evictedOf (outcome: ReadonlyArray<string | string[]>): Array<{ id: string, snapshot: string[] }> {
  const evicted: Array<{ id: string, snapshot: string[] }> = []
  for (let index = 2; index + 1 < outcome.length; index += 2) {
    const snapshot = outcome[index + 1]
    evicted.push({ id: outcome[index] as string, snapshot: Array.isArray(snapshot) ? snapshot : [] })
  }
  return evicted
}

/** What is kept of an upstream session for after its gateway session (KEYS[3] of create; the swap script writes the same shape). */
function endedRecord (route: string, upstream: UpstreamSessionRef): string {
  return JSON.stringify({ r: route, n: upstream.instance, u: upstream.sessionId })
}

function parseEndedRecord (text: string): EndedUpstreamSession | null {
  const record = parseJsonText(text) as { r?: unknown, n?: unknown, u?: unknown } | undefined
  if (typeof record?.r !== 'string' || typeof record.n !== 'string' || typeof record.u !== 'string') return null
  return { route: record.r, upstream: { instance: record.n, sessionId: record.u } }
}

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
