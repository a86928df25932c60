import type { FastifyBaseLogger } from 'fastify'
import type { SessionStore } from '../sessions/session-store.js'
import { closeUpstreamSession, upstreamSessionEnded } from './upstream-session-setup.js'
import type { UpstreamInstances } from './upstream-instances.js'

/*
 * A gateway session that ends takes its upstream session with it (docs/stateful-upstreams.md,
 * "Ending"). Called by sessions/session-ending.ts on the replica that ended the session: the one
 * that served the DELETE or the admin call, the one that won an expiry (exactly one per expiry), the
 * one whose initialize evicted an older session. The store hands each upstream session out once, so
 * it is ended once. Best effort: an instance that is gone has forgotten the session anyway; a
 * failure is logged.
 */

/** The longest the gateway waits for an instance to answer the DELETE of an upstream session. */
const UPSTREAM_DELETE_TIMEOUT_MS = 5_000

export class UpstreamSessionEnding {
  readonly #routes = new Map<string, UpstreamInstances>()

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
  async ended (store: SessionStore, id: string, principal: string | undefined, reason: string, headers: Record<string, string>, log: FastifyBaseLogger): Promise<void> {
    const ended = await store.takeUpstream(id, principal)
    if (ended === null) return
    const instance = this.#routes.get(ended.route)?.byKey(ended.upstream.instance)
    if (instance === undefined) {
      log.warn({ reason, route: ended.route }, 'session ended, but its upstream instance is no longer configured: its upstream session is left to the instance')
      return
    }
    try {
      const status = await closeUpstreamSession(instance, ended.upstream, headers, AbortSignal.timeout(UPSTREAM_DELETE_TIMEOUT_MS))
      if (upstreamSessionEnded(status)) log.debug({ reason, route: ended.route, instance: instance.key, status }, 'upstream session ended')
      else log.warn({ reason, route: ended.route, instance: instance.key, status }, 'session ended, but the instance refused to end its upstream session')
    } catch (error) {
      log.warn({ reason, route: ended.route, instance: instance.key, code: (error as { code?: unknown }).code ?? (error as { name?: unknown }).name }, 'session ended, but its upstream session could not be ended')
    }
  }
}
