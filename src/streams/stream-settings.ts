import type { StreamEventStore } from './stream-event-store.js'
import type { AbandonedLimit, StreamRegistry } from './stream-registry.js'

/** `streams` of the config as the routes use it, with the event store when streams are resumable (docs/streams.md). */
export interface StreamSettings {
  /** undefined: `streams.resumable: false`. */
  readonly events: StreamEventStore | undefined
  readonly retention: number
  readonly keepAlive: number
  readonly maxConnectionTime: number
  /** This replica's recorded streams, and the limits on those nobody reads. */
  readonly registry: StreamRegistry
  readonly observe: StreamObserver
}

/** Told how each relayed stream ended and how each resume went (the metrics, docs/operating.md). */
export interface StreamObserver {
  /** `complete`, or why the writer stopped (a StopReason of recorded-stream.ts). */
  streamEnded (end: string): void
  /** `replayed` (to the stream's end), `interrupted`, or `unknown` (an id not held). */
  resumed (outcome: string): void
  /** A stream ran into one of the limits (docs/streams.md, "Limits"). */
  limitReached (limit: AbandonedLimit | 'bytes_per_stream' | 'bytes_per_session'): void
}
