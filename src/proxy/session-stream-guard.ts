import type { FastifyBaseLogger } from 'fastify'
import type { ReplicaRelay } from '../sessions/replica-relay.js'
import type { LiveSession, SessionStore } from '../sessions/session-store.js'

/*
 * A standalone GET stream lives exactly as long as its session (docs/operating.md, "Streams and
 * session ends"). Whatever ends the session, on whichever replica (DELETE, admin, delete-by-
 * principal, expiry), the end is published to every replica and the stream ends here within moments;
 * `maxLifetime` ends it at the session's deadline. While open, the stream counts as activity: the
 * session's idle timeout is slid every third of it, and a slide that finds the session gone ends
 * the stream too (the check that holds even when a published end was missed).
 */

export interface SessionStreamGuardOptions {
  readonly store: SessionStore
  readonly relay: ReplicaRelay
  readonly session: LiveSession
  readonly principal: string | undefined
  readonly idleTimeout: number
  readonly maxLifetime: number
  readonly log: FastifyBaseLogger
}

export interface SessionStreamGuard {
  /** Aborts when the session has ended. */
  readonly ended: AbortSignal
  /** Stops watching (the stream closed). Harmless twice. */
  release (): void
}

const MIN_SLIDE_INTERVAL_MS = 1_000
/** The longest delay a Node timer takes (2^31 − 1 ms, about 24.8 days); longer ones fire at once. */
const MAX_TIMER_DELAY_MS = 2_147_483_647

/** How often an open stream slides its session's idle timeout: a third of it, at least a second. */
export function slideInterval (idleTimeout: number): number {
  return Math.min(MAX_TIMER_DELAY_MS, Math.max(MIN_SLIDE_INTERVAL_MS, Math.floor(idleTimeout / 3)))
}

export function guardSessionStream (options: SessionStreamGuardOptions): SessionStreamGuard {
  const { store, relay, session, principal, log } = options
  const ended = new AbortController()
  const end = (why: string): void => {
    if (ended.signal.aborted) return
    log.debug({ why }, 'session ended: its stream ends')
    ended.abort()
  }
  const check = (): void => {
    store.touch(session.id, principal).then((live) => { if (live === null) end('ended') }, (error: unknown) => {
      // The store cannot answer now: the stream stays, and the next check asks again.
      log.debug({ code: (error as { code?: unknown }).code }, 'session check of an open stream failed')
    })
  }
  relay.join().catch((error: unknown) => {
    log.debug({ code: (error as { code?: unknown }).code }, 'cannot hear session ends from other replicas now: the periodic check still ends the stream')
  })
  const unwatch = relay.watchSession(session.id, check)
  const slide = setInterval(check, slideInterval(options.idleTimeout))
  slide.unref()
  const deadline = session.createdAt + options.maxLifetime
  let lifetime: NodeJS.Timeout
  const armLifetime = (): void => {
    const left = deadline - Date.now()
    if (left <= 0) {
      end('lifetime')
      return
    }
    lifetime = setTimeout(armLifetime, Math.min(MAX_TIMER_DELAY_MS, left))
    lifetime.unref()
  }
  armLifetime()
  return {
    ended: ended.signal,
    release: () => {
      unwatch()
      clearInterval(slide)
      clearTimeout(lifetime)
    }
  }
}
