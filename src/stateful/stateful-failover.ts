import type { FastifyBaseLogger } from 'fastify'
import type { Counter } from 'prom-client'
import { GatewayError } from '../errors.js'
import { NO_UPSTREAM_SESSION, sameUpstreamSession, type LiveSession, type SessionStore, type UpstreamSessionRef } from '../sessions/session-store.js'
import { upstreamFailure } from '../upstream/upstream-failure.js'
import { openUpstreamSession, ReplayForgotten, ReplayRefused } from './upstream-session-setup.js'
import type { UpstreamSessionEnding } from './upstream-session-ending.js'
import type { UpstreamInstances } from './upstream-instances.js'

/*
 * Moving a session to a new upstream session when its own is lost (docs/stateful-upstreams.md,
 * "Failover"): the instance is unreachable or ejected, or it answered 404 for the upstream session
 * (restarted, or evicted it). The client's id never changes; only the mapping behind it does, in one
 * atomic swap in the store. Replicas that race agree: the first swap wins, the others close the
 * upstream session they opened and use the winner's. On one replica, concurrent requests of the
 * same session wait for one move.
 */

/** Why a session moves: the `cause` label of `mcpgw_upstream_failovers_total`. */
export type FailoverCause = 'unreachable' | 'not_found' | 'ejected'

export interface StatefulFailoverOptions {
  readonly route: string
  readonly store: SessionStore
  readonly instances: UpstreamInstances
  /** Ends the upstream sessions a move leaves behind (sent again while their instance is unreachable). */
  readonly ends: UpstreamSessionEnding
  /** routes[].initializeTimeout: the whole replay is bounded by it. */
  readonly replayTimeout: number
  /** `mcpgw_upstream_failovers_total` for the route, by cause. */
  readonly failovers: Counter<'route' | 'cause'>
  readonly log: FastifyBaseLogger
}

export class StatefulFailover {
  readonly #options: StatefulFailoverOptions
  /** Moves under way on this replica, by session id and the upstream session being left. */
  readonly #moving = new Map<string, Promise<UpstreamSessionRef>>()

  constructor (options: StatefulFailoverOptions) {
    this.#options = options
  }

  /**
   * The upstream session to use now instead of `lost`: a new one this call opened, or the one another
   * request or replica moved the session to first. `headers`: the client's, for the replay (its
   * Authorization). Rejects with MCPGW_SESSION_NOT_FOUND when the gateway session ended meanwhile,
   * MCPGW_UPSTREAM_UNREACHABLE when no instance takes the session, MCPGW_UPSTREAM_SESSION_LOST when
   * the instance forgot the session it had just opened (no other is tried) or every instance left is
   * left out for doing so.
   */
  async move (session: LiveSession, principal: string | undefined, lost: UpstreamSessionRef, cause: FailoverCause, headers: Record<string, string>): Promise<UpstreamSessionRef> {
    const key = `${session.id}\n${lost.instance}\n${lost.sessionId}`
    let moving = this.#moving.get(key)
    if (moving === undefined) {
      moving = this.#move(session, principal, lost, cause, headers).finally(() => { this.#moving.delete(key) })
      this.#moving.set(key, moving)
    }
    return await moving
  }

  async #move (session: LiveSession, principal: string | undefined, lost: UpstreamSessionRef, cause: FailoverCause, headers: Record<string, string>): Promise<UpstreamSessionRef> {
    const { store, instances, log } = this.#options
    // Read again, with what a replay needs: another replica may have moved the session already.
    const live = await store.touch(session.id, principal, { withClient: true })
    if (live === null) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
    const current = live.upstream ?? NO_UPSTREAM_SESSION
    if (!sameUpstreamSession(current, lost)) return current
    const replay = {
      protocolVersion: live.protocolVersion,
      clientInfo: live.clientInfo,
      clientCapabilities: live.clientCapabilities,
      logLevel: live.bridge?.logLevel,
      resourceSubscriptions: live.bridge?.resourceSubscriptions ?? []
    }
    // A restarted instance (404) may take the session again; an unreachable one may not.
    const excluded = new Set<string>(cause === 'not_found' ? [] : [lost.instance])
    const signal = AbortSignal.timeout(this.#options.replayTimeout)
    let opened: UpstreamSessionRef | undefined
    while (opened === undefined) {
      const instance = await instances.place(excluded)
      if (instance === undefined) {
        if (instances.anyForgetting()) throw new GatewayError('MCPGW_UPSTREAM_SESSION_LOST', { detail: 'no other instance can take the session now' })
        throw new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: 'no instance could take the session over' })
      }
      try {
        opened = await openUpstreamSession(instance, replay, headers, signal)
      } catch (error) {
        if (signal.aborted) throw new GatewayError('MCPGW_UPSTREAM_TIMEOUT', { detail: 'the session could not be moved within routes[].initializeTimeout', cause: error })
        if (error instanceof ReplayForgotten) {
          // One replay per move: another instance would cost one more, and the session is no better off for the wait.
          instances.forgotFreshSession(instance)
          throw new GatewayError('MCPGW_UPSTREAM_SESSION_LOST', { cause: error })
        }
        if (!(error instanceof ReplayRefused) && upstreamFailure(error).code !== 'MCPGW_UPSTREAM_UNREACHABLE') throw upstreamFailure(error)
        if (!(error instanceof ReplayRefused)) instances.eject(instance, 'refused or dropped a connection')
        log.warn({ route: this.#options.route, instance: instance.key, reason: error instanceof ReplayRefused ? error.message : (error as { code?: unknown }).code }, 'could not move a session to this instance: trying another')
        excluded.add(instance.key)
      }
    }
    let winner: UpstreamSessionRef | null
    try {
      winner = await store.swapUpstream(session.id, principal, lost, opened)
    } catch (error) {
      // Not recorded (as far as this replica knows): the session opened here is nobody's. Had the
      // swap run after all, the session's next request finds it gone (404) and moves again.
      this.#close(opened, headers)
      throw error
    }
    if (winner === null || !sameUpstreamSession(winner, opened)) {
      // Lost the race (or the session ended): the upstream session opened here is nobody's.
      this.#close(opened, headers)
      if (winner === null) throw new GatewayError('MCPGW_SESSION_NOT_FOUND')
      return winner
    }
    // The lost upstream session may live on (an instance that failed its health check, a connection
    // that broke): nobody uses it any more, so it is ended, as far as the instance can still hear it.
    // After a 404 the instance said it does not know it: there is nothing to end.
    if (cause !== 'not_found') this.#close(lost, headers)
    this.#options.failovers.inc({ route: this.#options.route, cause })
    log.info({ route: this.#options.route, cause, from: lost.instance, to: opened.instance }, 'session moved to another upstream session')
    return winner
  }

  /** Ends an upstream session nobody uses (not waited for; sent again while its instance is unreachable). */
  #close (upstream: UpstreamSessionRef, headers: Record<string, string>): void {
    const instance = this.#options.instances.byKey(upstream.instance)
    if (instance === undefined) return
    this.#options.ends.end(instance, upstream, headers, 'failover').catch(() => undefined)
  }
}
