import { GatewayError } from '../errors.js'
import { ChannelListeners } from '../sessions/channel-listeners.js'
import { checkedBatch, KEPT_STREAM_OVERHEAD_BYTES, keptBytes, NOT_KEPT, storedEventBytes, type AppendOutcome, type StoredEvent, type StreamEventStore, type StreamEventStoreLimits, type StreamOwner } from './stream-event-store.js'

/*
 * Stored SSE streams in this process's memory, for the memory session store (one gateway instance
 * only). The same contract as the Redis store: a stream is found only through its owner (id and
 * principal), an append checks the session in the same step, retention runs on the session
 * store's clock from each stream's last append, and at most `maxEvents` are kept per stream.
 */

interface MemoryStream {
  readonly events: StoredEvent[]
  /** The last seq appended, kept when trimming drops its event: the next one must be above it. */
  lastSeq: number
  expiresAt: number
  /** What it keeps, counted for the byte limits (keptBytes, and the stream's own overhead). */
  keptBytes: number
  /** A byte limit refused it once: nothing more of it is kept. */
  cut: boolean
}

/** A session's streams, by owner: `<principal>\n<id>` (the principal '' when unbound). */
function ownerKey (owner: StreamOwner): string {
  return `${owner.principal ?? ''}\n${owner.sessionId}`
}

/**
 * Every stored stream of one memory session store, whatever limits its views (MemoryStreamEventStore)
 * were made with, as all views of one Redis share its keys. The session store sweeps it on its own
 * timer and clears it on close.
 */
export class MemoryStreams {
  readonly #sessions = new Map<string, Map<string, MemoryStream>>()
  readonly #watchers = new ChannelListeners()

  /** The owner's stream, unless it has expired (then forgotten). */
  find (owner: StreamOwner, stream: string, now: number): MemoryStream | undefined {
    const streams = this.#sessions.get(ownerKey(owner))
    const found = streams?.get(stream)
    if (streams === undefined || found === undefined) return undefined
    if (found.expiresAt > now) return found
    streams.delete(stream)
    if (streams.size === 0) this.#sessions.delete(ownerKey(owner))
    return undefined
  }

  create (owner: StreamOwner, stream: string, expiresAt: number): MemoryStream {
    const key = ownerKey(owner)
    const streams = this.#sessions.get(key) ?? new Map<string, MemoryStream>()
    this.#sessions.set(key, streams)
    const created: MemoryStream = { events: [], lastSeq: 0, expiresAt, keptBytes: 0, cut: false }
    streams.set(stream, created)
    return created
  }

  /** What the owner's streams still kept keep, together (expired ones are forgotten first). */
  keptBytes (owner: StreamOwner, now: number): number {
    let total = 0
    for (const [name, stream] of this.#sessions.get(ownerKey(owner)) ?? []) {
      if (this.find(owner, name, now) !== undefined) total += stream.keptBytes
    }
    return total
  }

  remove (owner: StreamOwner): void {
    this.#sessions.delete(ownerKey(owner))
  }

  watch (owner: StreamOwner, stream: string, listener: () => void): () => boolean {
    return this.#watchers.add(`${ownerKey(owner)}\n${stream}`, listener)
  }

  /** Told after the caller continues, as a message through Redis would be. */
  appended (owner: StreamOwner, stream: string): void {
    const channel = `${ownerKey(owner)}\n${stream}`
    queueMicrotask(() => { this.#watchers.deliver(channel, '') })
  }

  /** Forgets every stream past its retention. */
  sweep (now: number): void {
    for (const [key, streams] of this.#sessions) {
      for (const [name, stream] of streams) {
        if (stream.expiresAt <= now) streams.delete(name)
      }
      if (streams.size === 0) this.#sessions.delete(key)
    }
  }

  clear (): void {
    this.#sessions.clear()
    this.#watchers.clear()
  }
}

export interface MemoryStreamEventStoreOptions {
  readonly streams: MemoryStreams
  readonly limits: StreamEventStoreLimits
  /** The session store's clock. */
  readonly now: () => number
  /** Whether the session is live for this owner (principal included), by the session store. */
  readonly isLive: (owner: StreamOwner) => boolean
}

export class MemoryStreamEventStore implements StreamEventStore {
  readonly #streams: MemoryStreams
  readonly #limits: StreamEventStoreLimits
  readonly #now: () => number
  readonly #isLive: (owner: StreamOwner) => boolean

  constructor (options: MemoryStreamEventStoreOptions) {
    this.#streams = options.streams
    this.#limits = options.limits
    this.#now = options.now
    this.#isLive = options.isLive
  }

  /**
   * Like the Redis store (its append script): an event whose seq is not above the stream's last one
   * rejects (MCPGW_INTERNAL_ERROR), storing nothing; the byte limits count and refuse the same way.
   */
  async append (owner: StreamOwner, stream: string, appended: StoredEvent | readonly StoredEvent[]): Promise<AppendOutcome> {
    const events = checkedBatch(appended)
    if (!this.#isLive(owner)) return 'session gone'
    const now = this.#now()
    const expiresAt = now + this.#limits.retention
    const first = events[0] as StoredEvent
    const existing = this.#streams.find(owner, stream, now)
    if (existing === undefined && first.seq !== 1) return 'stream gone'
    if (existing?.cut === true) return 'stream full'
    const { maxBytesPerStream, maxBytesPerSession } = this.#limits
    const cost = events.reduce((bytes, event) => bytes + keptBytes(event), existing === undefined ? KEPT_STREAM_OVERHEAD_BYTES : 0)
    const endOnly = events.length === 1 && first.kind === 'end'
    const refused = endOnly
      ? undefined
      : maxBytesPerStream > 0 && (existing?.keptBytes ?? 0) + cost > maxBytesPerStream
        ? 'stream full'
        : maxBytesPerSession > 0 && this.#streams.keptBytes(owner, now) + cost > maxBytesPerSession ? 'session full' : undefined
    if (refused !== undefined) {
      if (existing !== undefined) {
        existing.cut = true
        if (first.seq > existing.lastSeq) existing.events.push({ seq: first.seq, kind: 'end', data: NOT_KEPT })
        existing.expiresAt = expiresAt
        this.#streams.appended(owner, stream)
      }
      return refused
    }
    const stored = existing ?? this.#streams.create(owner, stream, expiresAt)
    if (first.seq <= stored.lastSeq) throw new GatewayError('MCPGW_INTERNAL_ERROR', { detail: 'a stored event\'s seq must be above the stream\'s last one' })
    for (const event of events) stored.events.push({ seq: event.seq, kind: event.kind, data: event.data, ...(event.type === undefined ? {} : { type: event.type }) })
    if (stored.events.length > this.#limits.maxEvents) stored.events.splice(0, stored.events.length - this.#limits.maxEvents)
    stored.lastSeq = (events.at(-1) as StoredEvent).seq
    stored.expiresAt = expiresAt
    stored.keptBytes += cost
    this.#streams.appended(owner, stream)
    return 'stored'
  }

  async renew (owner: StreamOwner, stream: string): Promise<boolean> {
    const stored = this.#streams.find(owner, stream, this.#now())
    if (stored === undefined) return false
    stored.expiresAt = this.#now() + this.#limits.retention
    return true
  }

  async read (owner: StreamOwner, stream: string, after: number, limit: number, maxBytes = 0): Promise<StoredEvent[] | null> {
    const stored = this.#streams.find(owner, stream, this.#now())
    if (stored === undefined) return null
    // Nothing follows and nothing ever will: past the last kept event, or at or past the end.
    const last = stored.events.at(-1)
    if (last !== undefined && (last.seq < after || (last.kind === 'end' && last.seq <= after))) return null
    const events: StoredEvent[] = []
    let bytes = 0
    for (const event of stored.events) {
      if (events.length >= limit || (maxBytes > 0 && events.length > 0 && bytes >= maxBytes)) break
      if (event.seq <= after) continue
      events.push(event)
      bytes += storedEventBytes(event)
    }
    return events
  }

  async watch (owner: StreamOwner, stream: string, onAppended: () => void): Promise<() => void> {
    const remove = this.#streams.watch(owner, stream, () => { onAppended() })
    let watching = true
    return () => {
      if (!watching) return
      watching = false
      remove()
    }
  }

  async removeSession (owner: StreamOwner): Promise<void> {
    this.#streams.remove(owner)
  }
}
