import { GatewayError } from '../errors.js'

/*
 * Where the events of resumable SSE streams are kept (docs/streams.md). One stored stream per SSE
 * response the gateway relays for a legacy session (a POST's response stream, or a standalone GET
 * stream), so that a client whose connection dropped can come back with `GET` + `Last-Event-ID` on
 * any replica and get what it missed (MCP 2025-11-25, Transports › Resumability and Redelivery).
 *
 * Two implementations with one contract test suite: Redis (one Redis Stream per response stream,
 * beside the session in its Cluster slot) and memory (one instance only, with the memory session
 * store). Every stream belongs to one session: a stream is only ever found through the session
 * (id and principal) it was stored for, so an event id is worthless with any other session.
 */

/** The session a stream belongs to, as the session store keys it. */
export interface StreamOwner {
  readonly sessionId: string
  /** The session's principal hash (security/principal.ts); undefined: an unbound session. */
  readonly principal: string | undefined
}

/**
 * One stored event. `seq` is the event's position in its stream: 1, 2, 3 … in the order appended.
 *   - `message`: an SSE event relayed to the client; `data` is its data (a JSON-RPC message as text),
 *     `type` its SSE event type when it is not `message`;
 *   - `priming`: the empty event that starts a stream (2025-11-25), kept so that its id resumes;
 *   - `end`: the stream has ended; nothing follows. `data` '' when it ended whole (its final
 *     response went out, or it was cut with an error event for its request first); NOT_KEPT when
 *     the store kept no more of it (a byte limit), though the stream may have gone on live.
 */
export interface StoredEvent {
  readonly seq: number
  readonly kind: 'message' | 'priming' | 'end'
  readonly data: string
  readonly type?: string | undefined
}

/** The `data` of an end marker that says the rest of its stream was not kept. */
export const NOT_KEPT = 'not kept'

export interface StreamEventStoreLimits {
  /** Most events kept per stream (streams.maxEvents): the oldest are dropped first. */
  readonly maxEvents: number
  /** Milliseconds a stream is kept after its last append (streams.retention). */
  readonly retention: number
  /** Most bytes one stream keeps, counted by keptBytes (streams.maxBytesPerStream); 0: no limit. */
  readonly maxBytesPerStream: number
  /** Most bytes all streams of one session keep together, counted by keptBytes (streams.maxBytesPerSession); 0: no limit. */
  readonly maxBytesPerSession: number
}

/**
 * What an append came to:
 *   - `stored`;
 *   - `session gone`: the session does not exist (nothing stored);
 *   - `stream gone`: the stream is not kept (it expired, or its first event was refused): a stream
 *     is made by its first event only, never again with a gap where its start was;
 *   - `stream full` / `session full`: a byte limit refused it. The store keeps nothing more of that
 *     stream: it stored an end marker (NOT_KEPT) where the refused events begin, and refuses every
 *     later append to it. A stream whose first event is refused is not kept at all.
 */
export type AppendOutcome = 'stored' | 'session gone' | 'stream gone' | 'stream full' | 'session full'

/**
 * What a byte limit counts (docs/streams.md, "Limits"): each event's data, type and kind, and a fixed
 * overhead per event and per stream, close to what Redis spends on them (a new Redis Stream
 * allocates its first node whole: about 4.7 KiB whatever it holds).
 */
export const KEPT_EVENT_OVERHEAD_BYTES = 16
export const KEPT_STREAM_OVERHEAD_BYTES = 4800

export interface StreamEventStore {
  /**
   * Appends events (one, or a batch in `seq` order: one round trip) to `stream` of `owner`, in the
   * same step checking that the session still exists and the byte limits (AppendOutcome). A
   * stream is made by its first event (seq 1) only. An append of an `end` marker alone is never
   * refused by a byte limit. Each append renews the stream's retention. Appends to one stream are
   * issued in `seq` order without waiting for each other (pipelined: the hot path never waits for
   * the store) and are stored in that order. Rejects with MCPGW_SESSION_STORE_UNAVAILABLE when the
   * store cannot be reached.
   */
  append (owner: StreamOwner, stream: string, events: StoredEvent | readonly StoredEvent[]): Promise<AppendOutcome>
  /**
   * Renews the retention of a stream whose writer still runs (a quiet call is kept as long as it
   * lasts, and `retention` after its last sign of life). Resolves false when no such stream is kept.
   */
  renew (owner: StreamOwner, stream: string): Promise<boolean>
  /**
   * The stored events of `stream` with `seq` > `after`, oldest first, at most `limit` of them and,
   * when `maxBytes` is given, no more once their data reach that many bytes (always at least one);
   * null when the store holds no such stream for this owner (never stored, expired, removed, or
   * another session's), or when nothing follows `after` and nothing ever will: `after` is past the
   * stream's last kept event, or at or past its end marker (an id the store never kept is as good
   * as none).
   */
  read (owner: StreamOwner, stream: string, after: number, limit: number, maxBytes?: number): Promise<StoredEvent[] | null>
  /**
   * Calls `onAppended` after each append to `stream` of `owner`, by any replica sharing the store
   * (a signal to `read` again, not the event itself: several appends may be told once). Resolves
   * once listening; the returned function stops it (harmless twice).
   */
  watch (owner: StreamOwner, stream: string, onAppended: () => void): Promise<() => void>
  /** Removes every stream of the session (it has ended, whatever ended it). */
  removeSession (owner: StreamOwner): Promise<void>
}

/** What one stored event counts against a read's `maxBytes` (as the Redis store counts its fields). */
export function storedEventBytes (event: StoredEvent): number {
  return Buffer.byteLength(event.data) + event.kind.length + (event.type === undefined ? 0 : Buffer.byteLength(event.type))
}

/** What one stored event counts against the byte limits (as the Redis store's append script counts it). */
export function keptBytes (event: StoredEvent): number {
  return storedEventBytes(event) + KEPT_EVENT_OVERHEAD_BYTES
}

/** A batch to append: at least one event, seqs whole numbers from 1, ascending. */
export function checkedBatch (appended: StoredEvent | readonly StoredEvent[]): readonly StoredEvent[] {
  const events = Array.isArray(appended) ? appended as readonly StoredEvent[] : [appended as StoredEvent]
  let previous = 0
  for (const event of events) {
    if (!Number.isSafeInteger(event.seq) || event.seq <= previous) {
      throw new GatewayError('MCPGW_INTERNAL_ERROR', { detail: 'stored events\' seqs must be whole numbers from 1, ascending' })
    }
    previous = event.seq
  }
  if (events.length === 0) throw new GatewayError('MCPGW_INTERNAL_ERROR', { detail: 'an append needs at least one event' })
  return events
}
