/**
 * Where sessions live. Two implementations with the same contract and the same test suite
 * (test/session-store.test.ts): RedisSessionStore for anything real, MemorySessionStore for a single
 * instance with nothing else to run (the demo, unit tests).
 *
 * A store enforces both timeouts itself so that every gateway instance sharing it gives the same
 * answer: a session is live until `idleTimeout` passes without a `touch` or `maxLifetime` passes
 * since `create`, whichever comes first; after that, or after `terminate`, it does not exist.
 */

/** What the gateway remembers of a session (issue #2: negotiated version, client, route, creation). */
export interface SessionData {
  /** Route path the session was created on; a session is only valid on its own route. */
  readonly route: string
  /** `protocolVersion` from the upstream's InitializeResult. */
  readonly protocolVersion: string
  /** `params.clientInfo` and `params.capabilities` of the client's initialize request. */
  readonly clientInfo: unknown
  readonly clientCapabilities: unknown
}

/** What the hot path needs of a live session; returned by `touch` without decoding the client's JSON. */
export interface LiveSession {
  readonly id: string
  readonly route: string
  readonly protocolVersion: string
  /** Milliseconds since the epoch, by the store's clock (Redis TIME for Redis). */
  readonly createdAt: number
}

export interface SessionRecord extends SessionData, LiveSession {}

export interface SessionTimeouts {
  /** Milliseconds; sliding, renewed by every accepted request. */
  readonly idleTimeout: number
  /** Milliseconds; absolute, counted from creation. */
  readonly maxLifetime: number
}

export interface SessionStore {
  /** Stores a new session under `id`. Resolves once the session is durable in the store. */
  create (id: string, data: SessionData): Promise<SessionRecord>
  /**
   * Checks that the session is live and slides its idle timeout, atomically, in one round trip.
   * Resolves null when the session is unknown, expired or terminated.
   */
  touch (id: string): Promise<LiveSession | null>
  /** Reads a live session without sliding its idle timeout; null when it does not exist. */
  get (id: string): Promise<SessionRecord | null>
  /**
   * Ends the session, atomically checking that it belongs to `route` when one is given (a DELETE on
   * one route must not end a session of another). Resolves false when there was nothing to end.
   */
  terminate (id: string, route?: string): Promise<boolean>
  /** Whether the store can serve requests right now (readiness). */
  isAvailable (): boolean
  /** Resolves once the store can serve requests; rejects when it cannot within its connect timeout. */
  ready (): Promise<void>
  /** Releases connections and timers; a second call is harmless. */
  close (): Promise<void>
}
