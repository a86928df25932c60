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

import { GatewayError } from '../errors.js'
import type { StreamEventStore, StreamEventStoreLimits } from '../streams/stream-event-store.js'

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
  /** Stateful upstreams only: the upstream session behind this one (docs/stateful-upstreams.md). */
  readonly upstream?: UpstreamSessionRef | undefined
}

/**
 * The session a stateful upstream instance keeps for a gateway session (docs/stateful-upstreams.md).
 * Never shown to the client: it sees the gateway's id only.
 */
export interface UpstreamSessionRef {
  /** The instance's key: its configured URL's scheme, host and path (never credentials or a query). */
  readonly instance: string
  /** The instance's `Mcp-Session-Id` for it; '' when the instance assigned none. */
  readonly sessionId: string
}

/**
 * An ended session's upstream session is kept this long past the session's max lifetime, for the
 * replica that ends it upstream (see SessionStore.takeUpstream).
 */
export const UPSTREAM_GRACE_MS = 10 * 60 * 1000

/** What a session is on before it has an upstream session (one created before its route was stateful). */
export const NO_UPSTREAM_SESSION: UpstreamSessionRef = { instance: '', sessionId: '' }

export function sameUpstreamSession (one: UpstreamSessionRef, other: UpstreamSessionRef): boolean {
  return one.instance === other.instance && one.sessionId === other.sessionId
}

/** An upstream session whose gateway session has ended: what is needed to end it too. */
export interface EndedUpstreamSession {
  readonly route: string
  readonly upstream: UpstreamSessionRef
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
  /**
   * Only with `withClient`: what the era bridge answered for the upstream (see BridgeState); on a
   * stateful route, the log level and subscriptions a failover replays.
   */
  readonly bridge?: BridgeState
  /** Stateful upstreams: the upstream session, read in the same round trip as the check. */
  readonly upstream?: UpstreamSessionRef
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
  /**
   * Past `maxPerPrincipal`: refuse the new session (the default), or end the principal's oldest
   * sessions to make room (each reported to `onExpired` listeners with reason 'evicted').
   */
  readonly maxPerPrincipalPolicy?: 'refuse' | 'evictOldest'
}

export interface SessionPage {
  readonly sessions: readonly SessionRecord[]
  /** Pass back to get the next page; undefined when there is none. Always matches LIST_CURSOR_PATTERN. */
  readonly nextCursor: string | undefined
}

/**
 * Every store's listing cursor: `<node>:<position>`, digits only (a Redis SCAN cursor per Cluster
 * master, an offset, a sequence number). A cursor not of this shape is refused with 400.
 */
export const LIST_CURSOR_PATTERN = '^([0-9]{1,5}):([0-9]{1,20})$'

const LARGEST_SCAN_CURSOR = 2n ** 64n - 1n
const listCursor = new RegExp(LIST_CURSOR_PATTERN)

/**
 * A listing cursor `<node index>:<position>` (LIST_CURSOR_PATTERN): anything else, or a position
 * past what SCAN accepts (an unsigned 64-bit number), is the caller's mistake, answered 400.
 */
export function parseListCursor (cursor: string): { readonly node: number, readonly position: bigint } {
  const match = listCursor.exec(cursor)
  const position = match === null ? undefined : BigInt(match[2] as string)
  if (match === null || position === undefined || position > LARGEST_SCAN_CURSOR) {
    throw new GatewayError('MCPGW_INVALID_REQUEST', { detail: 'cursor must be a nextCursor from a previous page' })
  }
  return { node: Number(match[1]), position }
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

/** Why a session expired: its idle timeout or its max lifetime. */
export type ExpiryReason = 'idle' | 'lifetime'

/**
 * Why the store ended a session without anyone asking it to: it expired, or it was evicted to make
 * room for a newer session of the same principal (`maxPerPrincipalPolicy: evictOldest`).
 */
export type StoreEndReason = ExpiryReason | 'evicted'

/** `principal`: the ended session's (undefined: unbound), so that what is kept under its keys can be found. */
export type StoreEndListener = (reason: StoreEndReason, id: string, principal: string | undefined) => void

export interface SessionStore {
  /**
   * Stores a new session under `id`. Resolves once the session is durable in the store. When the
   * principal already holds `maxPerPrincipal` live sessions: throws MCPGW_TOO_MANY_SESSIONS, or with
   * `maxPerPrincipalPolicy: evictOldest` ends its oldest ones in the same atomic step (reported to
   * the `onExpired` listeners of this store only, as 'evicted').
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
   * Every end (this, terminateAny, terminatePrincipal, an eviction) waits for `redis.waitForReplicas`
   * like creation does; an end the replicas did not acknowledge is undone and throws
   * MCPGW_TERMINATION_UNACKNOWLEDGED (docs/scaling.md).
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
   * Calls `listener` once per session the store ended by itself, across all gateway instances
   * sharing the store: each expiry (idle timeout or max lifetime) is reported by exactly one
   * instance, each eviction by the instance whose `create` evicted it.
   */
  onExpired (listener: StoreEndListener): void
  /**
   * Era bridge: changes the bridge state of a live session owned by `principal`, without sliding it.
   * Resolves false when the session is not live (or not this principal's).
   */
  updateBridgeState (id: string, principal: string | undefined, change: BridgeStateChange): Promise<boolean>
  /**
   * Stateful upstreams: moves a live session from upstream session `from` to `to`, atomically, only
   * if it is still on `from`. Resolves with the session's upstream session afterwards: `to` when
   * this call won, the winner's when another replica moved it first; null when the session is not
   * live (or not this principal's). Keeps the counts of `upstreamSessionCounts`.
   */
  swapUpstream (id: string, principal: string | undefined, from: UpstreamSessionRef, to: UpstreamSessionRef): Promise<UpstreamSessionRef | null>
  /**
   * Stateful upstreams: the upstream session of an ended gateway session, handed out once (to the
   * one caller that ends it upstream); null when there is none or it was already taken. Kept past
   * the session's own end (Redis forgets an expired session's hash before anyone hears of it) until
   * its max lifetime plus a grace.
   */
  takeUpstream (id: string, principal: string | undefined): Promise<EndedUpstreamSession | null>
  /** Stateful upstreams: live upstream sessions per instance URL of `route`, across every replica. */
  upstreamSessionCounts (route: string): Promise<Map<string, number>>
  /**
   * Messages between gateway instances sharing the store (the era bridge routes a client's answer
   * to the instance holding the stream that asked). Delivered to every subscriber of `channel` on
   * every instance, this one included; nothing is kept for a subscriber that is not there.
   */
  publish (channel: string, message: string): Promise<void>
  /** Resolves once subscribed; the returned function unsubscribes. */
  subscribe (channel: string, listener: (message: string) => void): Promise<() => void>
  /**
   * Where the events of the sessions' resumable SSE streams are kept: beside the sessions, so that
   * an append checks its session in the same step (docs/scaling.md, "Keys and scripts").
   */
  streamEvents (limits: StreamEventStoreLimits): StreamEventStore
  /** Whether the store can serve requests right now (readiness). */
  isAvailable (): boolean
  /** Resolves once the store can serve requests; rejects when it cannot within its connect timeout. */
  ready (): Promise<void>
  /** Releases connections and timers; a second call is harmless. */
  close (): Promise<void>
}
