/**
 * Where sessions live. Two implementations with the same contract and the same test suite
 * (test/session-store.test.ts): RedisSessionStore for anything real, MemorySessionStore for a single
 * instance with nothing else to run (the demo, unit tests).
 *
 * A store enforces both timeouts itself so that every gateway instance sharing it gives the same
 * answer: a session is live until `idleTimeout` passes without a `touch` or `maxLifetime` passes
 * since `create`, whichever comes first; after that, or after `terminate`, it does not exist.
 *
 * Identity binding (docs/security.md): a session created with a principal is only ever found again with
 * that same principal. Asked with any other principal (or none), it does not exist, so nothing
 * reveals that the id is live.
 */

/** What the gateway remembers of a session: negotiated version, client, route, creation. */
export interface SessionData {
  /** Route path the session was created on; a session is only valid on its own route. */
  readonly route: string
  /** `protocolVersion` from the upstream's InitializeResult. */
  readonly protocolVersion: string
  /** `params.clientInfo` and `params.capabilities` of the client's initialize request. */
  readonly clientInfo: unknown
  readonly clientCapabilities: unknown
  /** Hash of the identity that created the session (see security/principal.ts); undefined: unbound. */
  readonly principal?: string | undefined
}

/** What the hot path needs of a live session; returned by `touch` without decoding the client's JSON. */
export interface LiveSession {
  readonly id: string
  readonly route: string
  readonly protocolVersion: string
  /** Milliseconds since the epoch, by the store's clock (Redis TIME for Redis). */
  readonly createdAt: number
  /** Only with `touch(..., { withClient: true })`: what a modern upstream needs on every request. */
  readonly clientInfo?: unknown
  readonly clientCapabilities?: unknown
  /** Only with `withClient`: what the era bridge answered for the upstream (see BridgeState). */
  readonly bridge?: BridgeState
}

/**
 * What the era bridge (docs/era-bridge.md) answered at the edge on behalf of a 2026-07-28 upstream and must
 * carry on every later request: the level set with `logging/setLevel`, and the resources the client
 * subscribed to (the filter of the upstream `subscriptions/listen` stream).
 */
export interface BridgeState {
  readonly logLevel?: string | undefined
  readonly resourceSubscriptions: readonly string[]
}

export type BridgeStateChange =
  | { readonly logLevel: string }
  | { readonly subscribe: string }
  | { readonly unsubscribe: string }

export interface SessionRecord extends SessionData {
  readonly id: string
  /** Milliseconds since the epoch, by the store's clock (Redis TIME for Redis). */
  readonly createdAt: number
}

export interface SessionTimeouts {
  /** Milliseconds; sliding, renewed by every accepted request. */
  readonly idleTimeout: number
  /** Milliseconds; absolute, counted from creation. */
  readonly maxLifetime: number
  /** Live sessions one principal may hold; 0: no limit. Only applies to bound sessions. */
  readonly maxPerPrincipal?: number
}

export interface SessionPage {
  readonly sessions: readonly SessionRecord[]
  /** Pass back to get the next page; undefined when there is none. */
  readonly nextCursor: string | undefined
}

export interface ListSessionsOptions {
  readonly cursor?: string | undefined
  readonly limit: number
  readonly route?: string | undefined
  readonly principal?: string | undefined
}

export interface RateLimitResult {
  readonly allowed: boolean
  /** Milliseconds until the window resets. */
  readonly resetInMs: number
}

/** Why a session ended without anyone ending it. */
export type ExpiryReason = 'idle' | 'lifetime'

export interface SessionStore {
  /**
   * Stores a new session under `id`. Resolves once the session is durable in the store. Throws
   * MCPGW_TOO_MANY_SESSIONS when the principal already holds `maxPerPrincipal` live sessions.
   */
  create (id: string, data: SessionData): Promise<SessionRecord>
  /**
   * Checks that the session is live for this principal and slides its idle timeout, atomically, in
   * one round trip. Resolves null when the session is unknown, expired, terminated or someone else's.
   */
  touch (id: string, principal?: string, options?: { readonly withClient?: boolean }): Promise<LiveSession | null>
  /**
   * Ends the session, atomically checking that it belongs to `route` (a DELETE on one route must not
   * end a session of another) and to `principal`. Resolves false when there was nothing to end.
   */
  terminate (id: string, owner: { readonly route: string, readonly principal?: string | undefined }): Promise<boolean>
  /** Admin: reads a live session, whoever owns it, without sliding it; null when it does not exist. */
  get (id: string): Promise<SessionRecord | null>
  /** Admin: ends a session whoever owns it. */
  terminateAny (id: string): Promise<boolean>
  /**
   * Admin: ends every session of a principal; resolves with how many were ended. `onEnded` hears
   * each id ended (so that its end can be told to every replica).
   */
  terminatePrincipal (principal: string, onEnded?: (id: string) => void): Promise<number>
  /** Admin: one page of live sessions, optionally only one route's or one principal's. */
  list (options: ListSessionsOptions): Promise<SessionPage>
  /** Counts one event for `key` in a fixed window shared by every gateway instance. */
  consumeRateLimit (key: string, limit: number, windowMs: number): Promise<RateLimitResult>
  /**
   * Calls `listener` once per session that expired (idle timeout or max lifetime), across all
   * gateway instances sharing the store: each expiry is reported by exactly one instance.
   */
  onExpired (listener: (reason: ExpiryReason, id: string) => void): void
  /**
   * Era bridge: changes the bridge state of a live session owned by `principal`, without sliding it.
   * Resolves false when the session is not live (or not this principal's).
   */
  updateBridgeState (id: string, principal: string | undefined, change: BridgeStateChange): Promise<boolean>
  /**
   * Messages between gateway instances sharing the store (the era bridge routes a client's answer
   * to the instance holding the stream that asked). Delivered to every subscriber of `channel` on
   * every instance, this one included; nothing is kept for a subscriber that is not there.
   */
  publish (channel: string, message: string): Promise<void>
  /** Resolves once subscribed; the returned function unsubscribes. */
  subscribe (channel: string, listener: (message: string) => void): Promise<() => void>
  /** Whether the store can serve requests right now (readiness). */
  isAvailable (): boolean
  /** Resolves once the store can serve requests; rejects when it cannot within its connect timeout. */
  ready (): Promise<void>
  /** Releases connections and timers; a second call is harmless. */
  close (): Promise<void>
}
