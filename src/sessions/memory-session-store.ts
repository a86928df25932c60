import { GatewayError } from '../errors.js'
import { MemoryStreamEventStore, MemoryStreams } from '../streams/memory-stream-event-store.js'
import type { StreamEventStore, StreamEventStoreLimits } from '../streams/stream-event-store.js'
import { ChannelListeners } from './channel-listeners.js'
import {
  parseListCursor, type BridgeStateChange, type ExpiryReason, type ListSessionsOptions, type LiveSession, type RateLimitResult, type SessionData, type SessionPage,
  type SessionRecord, type SessionStore, type SessionTimeouts, type StoreEndListener, type EndedUpstreamSession, type UpstreamSessionRef, NO_UPSTREAM_SESSION, sameUpstreamSession, UPSTREAM_GRACE_MS
} from './session-store.js'

interface MemoryEntry {
  readonly record: SessionRecord
  /** The same session as `touch` returns it (no client info), like the Redis store. */
  live: LiveSession
  /** Absolute end: createdAt + maxLifetime. */
  readonly deadline: number
  /** Current end: min(last touch + idleTimeout, deadline). */
  expiresAt: number
  /** Creation order, for listing cursors (`0:<sequence>`) that survive deletions. */
  readonly sequence: number
  logLevel?: string
  readonly resourceSubscriptions: Set<string>
}

/** Swept this often so that abandoned sessions do not pile up between requests. */
const SWEEP_INTERVAL_MS = 30_000

/**
 * Sessions in this process's memory. Only correct for a single gateway instance: another instance
 * cannot see these sessions, and a restart loses them (the gateway logs a warning when it uses this).
 */
export class MemorySessionStore implements SessionStore {
  readonly #timeouts: SessionTimeouts
  readonly #now: () => number
  readonly #sessions = new Map<string, MemoryEntry>()
  readonly #rateWindows = new Map<string, { count: number, resetsAt: number }>()
  readonly #sweepTimer: NodeJS.Timeout
  readonly #expiryListeners: StoreEndListener[] = []
  readonly #channels = new ChannelListeners()
  readonly #streams = new MemoryStreams()
  /** Stateful upstreams: each session's upstream session, kept past the session's end until taken (see takeUpstream). */
  readonly #upstreams = new Map<string, { ended: EndedUpstreamSession, principal: string | undefined, forgetAt: number }>()
  #sequence = 0

  constructor (timeouts: SessionTimeouts, now: () => number = Date.now) {
    this.#timeouts = timeouts
    this.#now = now
    this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS)
    this.#sweepTimer.unref()
  }

  async create (id: string, data: SessionData): Promise<SessionRecord> {
    const maxPerPrincipal = this.#timeouts.maxPerPrincipal ?? 0
    const evicted: string[] = []
    if (data.principal !== undefined && maxPerPrincipal > 0) {
      // Oldest first: the map keeps creation order.
      const held = [...this.#sessions.keys()].filter((key) => this.#liveEntry(key)?.record.principal === data.principal)
      if (held.length >= maxPerPrincipal && this.#timeouts.maxPerPrincipalPolicy !== 'evictOldest') {
        throw new GatewayError('MCPGW_TOO_MANY_SESSIONS', { detail: `at most ${maxPerPrincipal}` })
      }
      evicted.push(...held.slice(0, Math.max(0, held.length - maxPerPrincipal + 1)))
    }
    for (const old of evicted) this.#sessions.delete(old)
    const createdAt = this.#now()
    const record: SessionRecord = { ...data, id, createdAt }
    const live: LiveSession = { id, route: data.route, protocolVersion: data.protocolVersion, createdAt, ...(data.upstream === undefined ? {} : { upstream: data.upstream }) }
    const deadline = createdAt + this.#timeouts.maxLifetime
    if (data.upstream !== undefined) this.#upstreams.set(id, { ended: { route: data.route, upstream: data.upstream }, principal: data.principal, forgetAt: deadline + UPSTREAM_GRACE_MS })
    this.#sessions.set(id, { record, live, deadline, expiresAt: Math.min(createdAt + this.#timeouts.idleTimeout, deadline), sequence: ++this.#sequence, resourceSubscriptions: new Set() })
    for (const old of evicted) {
      for (const listener of this.#expiryListeners) listener('evicted', old, data.principal)
    }
    return record
  }

  async touch (id: string, principal?: string, options?: { readonly withClient?: boolean }): Promise<LiveSession | null> {
    const entry = this.#ownedEntry(id, principal)
    if (entry === undefined) return null
    entry.expiresAt = Math.min(this.#now() + this.#timeouts.idleTimeout, entry.deadline)
    if (options?.withClient !== true) return entry.live
    const bridge = { resourceSubscriptions: [...entry.resourceSubscriptions], ...(entry.logLevel === undefined ? {} : { logLevel: entry.logLevel }) }
    return { ...entry.live, clientInfo: entry.record.clientInfo, clientCapabilities: entry.record.clientCapabilities, bridge }
  }

  async swapUpstream (id: string, principal: string | undefined, from: UpstreamSessionRef, to: UpstreamSessionRef): Promise<UpstreamSessionRef | null> {
    const entry = this.#ownedEntry(id, principal)
    if (entry === undefined) return null
    const current = entry.live.upstream ?? NO_UPSTREAM_SESSION
    if (!sameUpstreamSession(current, from)) return current
    entry.live = { ...entry.live, upstream: to }
    const kept = this.#upstreams.get(id)
    this.#upstreams.set(id, { ended: { route: entry.record.route, upstream: to }, principal, forgetAt: kept?.forgetAt ?? entry.deadline + UPSTREAM_GRACE_MS })
    return to
  }

  async takeUpstream (id: string, principal: string | undefined): Promise<EndedUpstreamSession | null> {
    const kept = this.#upstreams.get(id)
    if (kept === undefined || kept.principal !== principal || this.#ownedEntry(id, principal) !== undefined) return null
    this.#upstreams.delete(id)
    return kept.ended
  }

  async upstreamSessionCounts (route: string): Promise<Map<string, number>> {
    const counts = new Map<string, number>()
    for (const [id, { ended }] of this.#upstreams) {
      if (ended.route === route && this.#liveEntry(id) !== undefined) counts.set(ended.upstream.instance, (counts.get(ended.upstream.instance) ?? 0) + 1)
    }
    return counts
  }

  async updateBridgeState (id: string, principal: string | undefined, change: BridgeStateChange): Promise<boolean> {
    const entry = this.#ownedEntry(id, principal)
    if (entry === undefined) return false
    if ('logLevel' in change) entry.logLevel = change.logLevel
    else if ('subscribe' in change) entry.resourceSubscriptions.add(change.subscribe)
    else entry.resourceSubscriptions.delete(change.unsubscribe)
    return true
  }

  async publish (channel: string, message: string): Promise<void> {
    // Delivered after the caller continues, as a message through Redis would be.
    queueMicrotask(() => { this.#channels.deliver(channel, message) })
  }

  async subscribe (channel: string, listener: (message: string) => void): Promise<() => void> {
    const remove = this.#channels.add(channel, listener)
    return () => { remove() }
  }

  async get (id: string): Promise<SessionRecord | null> {
    return this.#liveEntry(id)?.record ?? null
  }

  async terminate (id: string, owner: { readonly route: string, readonly principal?: string | undefined }): Promise<boolean> {
    const entry = this.#ownedEntry(id, owner.principal)
    if (entry === undefined || entry.record.route !== owner.route) return false
    this.#sessions.delete(id)
    return true
  }

  async terminateAny (id: string): Promise<boolean> {
    const live = this.#liveEntry(id) !== undefined
    this.#sessions.delete(id)
    return live
  }

  async terminatePrincipal (principal: string, onEnded?: (id: string) => void): Promise<number> {
    let ended = 0
    for (const id of [...this.#sessions.keys()]) {
      if (this.#liveEntry(id)?.record.principal === principal) {
        this.#sessions.delete(id)
        ended++
        onEnded?.(id)
      }
    }
    return ended
  }

  async list (options: ListSessionsOptions): Promise<SessionPage> {
    const after = options.cursor === undefined ? 0n : parseListCursor(options.cursor).position
    const sessions: SessionRecord[] = []
    let last: number | undefined
    let more = false
    // In creation order, from the entry after the cursor's: a session live for the whole listing is seen exactly once.
    for (const [id, entry] of this.#sessions) {
      if (BigInt(entry.sequence) <= after) continue
      if (sessions.length === options.limit) {
        more = true
        break
      }
      last = entry.sequence
      const record = this.#liveEntry(id)?.record
      if (record === undefined) continue
      if (options.route !== undefined && record.route !== options.route) continue
      if (options.principal !== undefined && record.principal !== options.principal) continue
      sessions.push(record)
    }
    return { sessions, nextCursor: more && last !== undefined ? `0:${last}` : undefined }
  }

  async consumeRateLimit (key: string, limit: number, windowMs: number): Promise<RateLimitResult> {
    const now = this.#now()
    let window = this.#rateWindows.get(key)
    if (window === undefined || window.resetsAt <= now) {
      window = { count: 0, resetsAt: now + windowMs }
      this.#rateWindows.set(key, window)
    }
    window.count++
    return { allowed: window.count <= limit, resetInMs: window.resetsAt - now }
  }

  onExpired (listener: StoreEndListener): void {
    this.#expiryListeners.push(listener)
  }

  /** Every call's store shares this store's streams (and its clock), as Redis keys are shared. */
  streamEvents (limits: StreamEventStoreLimits): StreamEventStore {
    return new MemoryStreamEventStore({
      streams: this.#streams,
      limits,
      now: this.#now,
      isLive: (owner) => this.#ownedEntry(owner.sessionId, owner.principal) !== undefined
    })
  }

  isAvailable (): boolean {
    return true
  }

  async ready (): Promise<void> {}

  async close (): Promise<void> {
    clearInterval(this.#sweepTimer)
    this.#sessions.clear()
    this.#rateWindows.clear()
    this.#channels.clear()
    this.#streams.clear()
    this.#upstreams.clear()
  }

  #liveEntry (id: string): MemoryEntry | undefined {
    const entry = this.#sessions.get(id)
    if (entry === undefined) return undefined
    if (entry.expiresAt > this.#now()) return entry
    this.#expire(id, entry)
    return undefined
  }

  #expire (id: string, entry: MemoryEntry): void {
    this.#sessions.delete(id)
    const reason: ExpiryReason = entry.expiresAt >= entry.deadline ? 'lifetime' : 'idle'
    for (const listener of this.#expiryListeners) listener(reason, id, entry.record.principal)
  }

  /** The live entry only if `principal` owns it: a bound session is invisible to anyone else. */
  #ownedEntry (id: string, principal: string | undefined): MemoryEntry | undefined {
    const entry = this.#liveEntry(id)
    return entry !== undefined && entry.record.principal === principal ? entry : undefined
  }

  #sweep (): void {
    const now = this.#now()
    for (const [id, entry] of this.#sessions) {
      if (entry.expiresAt <= now) this.#expire(id, entry)
    }
    for (const [key, window] of this.#rateWindows) {
      if (window.resetsAt <= now) this.#rateWindows.delete(key)
    }
    for (const [id, kept] of this.#upstreams) {
      if (kept.forgetAt <= now) this.#upstreams.delete(id)
    }
    this.#streams.sweep(now)
  }
}
