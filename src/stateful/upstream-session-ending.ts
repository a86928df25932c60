import type { FastifyBaseLogger } from 'fastify'
import type { SessionStore, UpstreamSessionRef } from '../sessions/session-store.js'
import { upstreamFailure } from '../upstream/upstream-failure.js'
import { closeUpstreamSession, upstreamSessionEnded } from './upstream-session-setup.js'
import type { UpstreamInstance, UpstreamInstances } from './upstream-instances.js'

/*
 * Upstream sessions that nobody uses any more are ended (docs/stateful-upstreams.md, "Ending"):
 * - a gateway session that ends takes its upstream session with it. Called by
 *   sessions/session-ending.ts on the replica that ended the session: the one that served the DELETE
 *   or the admin call, the one that won an expiry (exactly one per expiry), the one whose initialize
 *   evicted an older session. The store hands each upstream session out once, so it is ended once;
 * - a failover ends the upstream session it left, and one it opened in vain (stateful-failover.ts).
 * A DELETE that cannot reach its instance (refused, reset, timed out: the instance is down or
 * partitioned, and an SDK server never expires a session by itself) is sent again every
 * RETRY_EVERY_MS for up to RETRY_FOR_MS; at most MAX_PENDING wait, the oldest given up first. An
 * instance that answers with a refusal (401, say) is not asked again: that is logged.
 */

/** The longest the gateway waits for an instance to answer the DELETE of an upstream session. */
const UPSTREAM_DELETE_TIMEOUT_MS = 5_000
const RETRY_EVERY_MS = 5_000
const RETRY_FOR_MS = 60 * 60 * 1000
const MAX_PENDING = 10_000

export interface UpstreamSessionEndingOptions {
  /** How often DELETEs that could not reach their instance are sent again (RETRY_EVERY_MS). */
  readonly retryEvery?: number
}

interface PendingEnd {
  readonly instance: UpstreamInstance
  readonly upstream: UpstreamSessionRef
  readonly headers: Record<string, string>
  readonly until: number
}

export class UpstreamSessionEnding {
  readonly #routes = new Map<string, UpstreamInstances>()
  readonly #log: FastifyBaseLogger
  /** DELETEs to send again, by instance and upstream session; in the order they failed. */
  readonly #pending = new Map<string, PendingEnd>()
  #retryTimer: NodeJS.Timeout | undefined
  #retrying = false
  readonly #retryEvery: number

  constructor (log: FastifyBaseLogger, options: UpstreamSessionEndingOptions = {}) {
    this.#log = log
    this.#retryEvery = options.retryEvery ?? RETRY_EVERY_MS
  }

  /** Registers a stateful route's instances (gateway.ts, once per route). */
  addRoute (path: string, instances: UpstreamInstances): void {
    this.#routes.set(path, instances)
  }

  /** Whether any route is stateful: if none, ending a session costs no extra store round trip. */
  get active (): boolean {
    return this.#routes.size > 0
  }

  /**
   * Ends the upstream session of a gateway session that has just ended, if it had one. `headers`:
   * the client's own (its Authorization) when the client ended it; an expiry or the admin API has
   * none to give.
   */
  async ended (store: SessionStore, id: string, principal: string | undefined, reason: string, headers: Record<string, string>): Promise<void> {
    const ended = await store.takeUpstream(id, principal)
    if (ended === null) return
    const instance = this.#routes.get(ended.route)?.byKey(ended.upstream.instance)
    if (instance === undefined) {
      this.#log.warn({ reason, route: ended.route }, 'session ended, but its upstream instance is no longer configured: its upstream session is left to the instance')
      return
    }
    await this.end(instance, ended.upstream, headers, reason)
  }

  /** Ends an upstream session nobody uses; sent again later when the instance cannot be reached. */
  async end (instance: UpstreamInstance, upstream: UpstreamSessionRef, headers: Record<string, string>, reason: string): Promise<void> {
    if (await this.#send({ instance, upstream, headers, until: Date.now() + RETRY_FOR_MS }, reason)) return
    if (this.#pending.size >= MAX_PENDING) {
      const [oldest] = this.#pending.keys()
      if (oldest !== undefined) this.#pending.delete(oldest)
      this.#log.warn({ reason, pending: MAX_PENDING }, 'too many upstream sessions wait to be ended: the oldest is given up')
    }
    this.#pending.set(`${instance.key}\n${upstream.sessionId}`, { instance, upstream, headers, until: Date.now() + RETRY_FOR_MS })
    this.#retryTimer ??= setInterval(() => { this.#retry().catch(() => undefined) }, this.#retryEvery).unref()
  }

  /** Stops the retries (the gateway closes; what still waits is left to the instances). */
  close (): void {
    clearInterval(this.#retryTimer)
    this.#retryTimer = undefined
    this.#pending.clear()
  }

  /** Sends the DELETE; resolves false only when the instance could not be reached (worth another try). */
  async #send (end: PendingEnd, reason: string): Promise<boolean> {
    const { instance, upstream, headers } = end
    try {
      const status = await closeUpstreamSession(instance, upstream, headers, AbortSignal.timeout(UPSTREAM_DELETE_TIMEOUT_MS))
      if (upstreamSessionEnded(status)) this.#log.debug({ reason, instance: instance.key, status }, 'upstream session ended')
      else this.#log.warn({ reason, instance: instance.key, status }, 'the instance refused to end an upstream session: it keeps it')
      return true
    } catch (error) {
      const failure = upstreamFailure(error)
      if (failure.code !== 'MCPGW_UPSTREAM_UNREACHABLE' && failure.code !== 'MCPGW_UPSTREAM_TIMEOUT') throw error
      return false
    }
  }

  async #retry (): Promise<void> {
    if (this.#retrying) return
    this.#retrying = true
    try {
      const now = Date.now()
      // One unreachable DELETE per instance and round is enough to know: the rest wait for the next.
      const unreachable = new Set<string>()
      for (const [key, end] of [...this.#pending]) {
        if (end.until <= now) {
          this.#pending.delete(key)
          this.#log.warn({ instance: end.instance.key }, 'an upstream session could not be ended within an hour: left to the instance')
        } else if (unreachable.has(end.instance.key)) {
          continue
        } else if (await this.#send(end, 'retry').catch(() => true)) {
          this.#pending.delete(key)
        } else {
          unreachable.add(end.instance.key)
        }
      }
    } finally {
      this.#retrying = false
      if (this.#pending.size === 0) {
        clearInterval(this.#retryTimer)
        this.#retryTimer = undefined
      }
    }
  }
}
