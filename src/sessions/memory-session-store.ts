import type { LiveSession, SessionData, SessionRecord, SessionStore, SessionTimeouts } from './session-store.js'

interface MemoryEntry {
  readonly record: SessionRecord
  /** The same session as `touch` returns it (no client info), like the Redis store. */
  readonly live: LiveSession
  /** Absolute end: createdAt + maxLifetime. */
  readonly deadline: number
  /** Current end: min(last touch + idleTimeout, deadline). */
  expiresAt: number
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
  readonly #sweepTimer: NodeJS.Timeout

  constructor (timeouts: SessionTimeouts, now: () => number = Date.now) {
    this.#timeouts = timeouts
    this.#now = now
    this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS)
    this.#sweepTimer.unref()
  }

  async create (id: string, data: SessionData): Promise<SessionRecord> {
    const createdAt = this.#now()
    const record: SessionRecord = { ...data, id, createdAt }
    const deadline = createdAt + this.#timeouts.maxLifetime
    const live: LiveSession = { id, route: data.route, protocolVersion: data.protocolVersion, createdAt }
    this.#sessions.set(id, { record, live, deadline, expiresAt: Math.min(createdAt + this.#timeouts.idleTimeout, deadline) })
    return record
  }

  async touch (id: string): Promise<LiveSession | null> {
    const entry = this.#liveEntry(id)
    if (entry === undefined) return null
    entry.expiresAt = Math.min(this.#now() + this.#timeouts.idleTimeout, entry.deadline)
    return entry.live
  }

  async get (id: string): Promise<SessionRecord | null> {
    return this.#liveEntry(id)?.record ?? null
  }

  async terminate (id: string, route?: string): Promise<boolean> {
    const entry = this.#liveEntry(id)
    if (entry === undefined || (route !== undefined && entry.record.route !== route)) return false
    this.#sessions.delete(id)
    return true
  }

  isAvailable (): boolean {
    return true
  }

  async ready (): Promise<void> {}

  async close (): Promise<void> {
    clearInterval(this.#sweepTimer)
    this.#sessions.clear()
  }

  #liveEntry (id: string): MemoryEntry | undefined {
    const entry = this.#sessions.get(id)
    if (entry === undefined) return undefined
    if (entry.expiresAt > this.#now()) return entry
    this.#sessions.delete(id)
    return undefined
  }

  #sweep (): void {
    const now = this.#now()
    for (const [id, entry] of this.#sessions) {
      if (entry.expiresAt <= now) this.#sessions.delete(id)
    }
  }
}
