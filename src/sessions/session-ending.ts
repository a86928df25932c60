import type { FastifyBaseLogger } from 'fastify'
import type { Counter } from 'prom-client'
import type { ReplicaRelay } from './replica-relay.js'
import type { StreamEventStore } from '../streams/stream-event-store.js'
import type { SessionStore, StoreEndReason } from './session-store.js'
import type { UpstreamSessionEnding } from '../stateful/upstream-session-ending.js'

/*
 * Every way a session ends goes through here (docs/architecture.md, "How a session ends"): the
 * client's DELETE, the admin API (one session, or all of a principal's), expiry (idle or lifetime,
 * noticed by the store) and eviction (`sessions.maxPerPrincipalPolicy: evictOldest`, done by the
 * store while it creates a newer session of the same principal). Each end is counted once and
 * always told to every replica, so that a stream any replica holds for the session ends with it,
 * whatever the route's era and whether or not this replica has probed it.
 *
 * Whatever ended it, the session's kept stream events go too (docs/streams.md), and on a stateful
 * route its upstream session is ended, by this replica (docs/stateful-upstreams.md).
 *
 * With `redis.waitForReplicas`, the store only reports an end the replicas acknowledged; otherwise
 * it throws MCPGW_TERMINATION_UNACKNOWLEDGED (503, the session is still live) and nothing is
 * counted or told (docs/scaling.md).
 */

export type SessionEndReason = 'delete' | 'admin' | StoreEndReason

export interface SessionEndingOptions {
  readonly store: SessionStore
  readonly relay: ReplicaRelay
  /** Where resumable streams are kept; undefined when they are not (`streams.resumable: false`). */
  readonly events: StreamEventStore | undefined
  /** `mcpgw_sessions_terminated_total`, by reason. */
  readonly terminated: Counter<'reason'>
  /** Ends the upstream sessions of stateful routes. */
  readonly upstreamSessions: UpstreamSessionEnding
  readonly log: FastifyBaseLogger
}

export class SessionEnding {
  readonly #store: SessionStore
  readonly #relay: ReplicaRelay
  readonly #events: StreamEventStore | undefined
  readonly #terminated: Counter<'reason'>
  readonly #upstreamSessions: UpstreamSessionEnding
  readonly #log: FastifyBaseLogger

  constructor (options: SessionEndingOptions) {
    this.#store = options.store
    this.#relay = options.relay
    this.#events = options.events
    this.#terminated = options.terminated
    this.#upstreamSessions = options.upstreamSessions
    this.#log = options.log
    // Expiry and eviction happen in the store; exactly one replica hears of each one.
    this.#store.onExpired((reason, id, principal) => { this.#ended(id, principal, reason).catch(() => undefined) })
  }

  /**
   * The client's DELETE: only on the session's own route, and only by its own principal.
   * `upstreamHeaders`: the client's, for ending a stateful upstream's session in its name.
   */
  async byClient (id: string, owner: { readonly route: string, readonly principal?: string | undefined }, upstreamHeaders: Record<string, string> = {}): Promise<boolean> {
    if (!await this.#store.terminate(id, owner)) return false
    await this.#ended(id, owner.principal, 'delete', upstreamHeaders)
    return true
  }

  /** Admin: one session, whoever owns it. */
  async byAdmin (id: string): Promise<boolean> {
    // Read first: its kept streams are found through its principal.
    const record = await this.#store.get(id)
    if (!await this.#store.terminateAny(id)) return false
    await this.#ended(id, record?.principal, 'admin')
    return true
  }

  /** Admin: every session of a principal; resolves with how many ended. */
  async byAdminForPrincipal (principal: string): Promise<number> {
    const ended: string[] = []
    try {
      await this.#store.terminatePrincipal(principal, (id) => { ended.push(id) })
    } finally {
      // Those that did end before a failure are told all the same.
      for (const id of ended) await this.#ended(id, principal, 'admin')
    }
    return ended.length
  }

  /**
   * The session is gone from the store: counted, and every replica told. A replica that cannot be
   * told now (the store's pub/sub is down) is logged: the session itself has ended either way.
   */
  async #ended (id: string, principal: string | undefined, reason: SessionEndReason, upstreamHeaders: Record<string, string> = {}): Promise<void> {
    this.#terminated.inc({ reason })
    try {
      await this.#relay.sessionChanged(id)
    } catch (error) {
      this.#log.warn({ reason, code: (error as { code?: unknown }).code }, 'session ended, but the other replicas could not be told')
    }
    // Appends check the session first, so nothing is kept for it after this.
    await this.#events?.removeSession({ sessionId: id, principal }).catch((error: unknown) => {
      this.#log.warn({ reason, code: (error as { code?: unknown }).code }, 'session ended, but its kept stream events could not be removed now: they expire after streams.retention')
    })
    if (this.#upstreamSessions.active) {
      // Not waited for: an instance that hangs must not hold up the end, nor a principal's many ends.
      this.#upstreamSessions.ended(this.#store, id, principal, reason, upstreamHeaders).catch((error: unknown) => {
        this.#log.warn({ reason, code: (error as { code?: unknown }).code }, 'session ended, but its upstream session could not be looked up: the instance keeps it until it ends it itself')
      })
    }
  }
}
