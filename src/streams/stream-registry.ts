import type { StreamOwner } from './stream-event-store.js'

/*
 * Every recorded stream this replica writes, and which of them run on with no client reading
 * (docs/streams.md, "Limits"). A client that leaves does not cancel its call (2025-11-25), so each
 * such stream holds an upstream request and gateway memory until its call ends or `retention`
 * passes: bounded here per session (past it the oldest is ended), per principal and for the whole
 * replica (past those a new one is ended at once). At shutdown every stream is stopped and its end
 * written before the store closes, so that a resume elsewhere stops at once.
 */

/** Why a registered stream is told to stop. */
export type RegistryStop = 'abandoned limit' | 'shutdown'

/** A stream as the registry sees it. */
export interface RegisteredStream {
  readonly owner: StreamOwner
  stop (reason: RegistryStop): void
  /** Resolves once what the stream asked the store to keep has been answered (or failed). */
  settled (): Promise<void>
}

export interface StreamRegistryLimits {
  /** streams.maxAbandonedPerSession */
  readonly perSession: number
  /** streams.maxAbandonedPerPrincipal */
  readonly perPrincipal: number
  /** streams.maxAbandoned */
  readonly total: number
}

/** Which limit a stream ran into (the `limit` label of `mcpgw_stream_limits_total`). */
export type AbandonedLimit = 'abandoned_per_session' | 'abandoned_per_principal' | 'abandoned'

export class StreamRegistry {
  readonly #limits: StreamRegistryLimits
  readonly #onLimit: (limit: AbandonedLimit) => void
  readonly #live = new Set<RegisteredStream>()
  /** Abandoned streams by session id, oldest first (a Set keeps insertion order). */
  readonly #abandonedBySession = new Map<string, Set<RegisteredStream>>()
  readonly #abandonedByPrincipal = new Map<string, number>()
  #abandoned = 0
  #shuttingDown = false

  constructor (limits: StreamRegistryLimits, onLimit: (limit: AbandonedLimit) => void) {
    this.#limits = limits
    this.#onLimit = onLimit
  }

  /** Streams written here now, and how many of them nobody reads (the `mcpgw_streams_running` gauge). */
  get counts (): { readonly running: number, readonly abandoned: number } {
    return { running: this.#live.size, abandoned: this.#abandoned }
  }

  add (stream: RegisteredStream): void {
    this.#live.add(stream)
  }

  /** The stream ended: forgotten, abandoned or not. Harmless twice. */
  remove (stream: RegisteredStream): void {
    this.#live.delete(stream)
    this.adopted(stream)
  }

  /**
   * The stream's client left: it may run on for one to resume. False when it must end at once (its
   * principal or this replica is at its limit). A session at its limit ends its oldest abandoned
   * stream to make room.
   */
  abandoned (stream: RegisteredStream): boolean {
    // Shutting down: every stream is about to be stopped (with the reason that says so).
    if (this.#shuttingDown) return true
    const { sessionId, principal } = stream.owner
    const ofSession = this.#abandonedBySession.get(sessionId) ?? new Set<RegisteredStream>()
    if (ofSession.has(stream)) return true
    if (this.#abandoned >= this.#limits.total) return this.#refuse('abandoned')
    if (principal !== undefined && (this.#abandonedByPrincipal.get(principal) ?? 0) >= this.#limits.perPrincipal) return this.#refuse('abandoned_per_principal')
    if (ofSession.size >= this.#limits.perSession) {
      const oldest = ofSession.values().next().value as RegisteredStream
      this.adopted(oldest)
      this.#onLimit('abandoned_per_session')
      oldest.stop('abandoned limit')
    }
    this.#abandonedBySession.set(sessionId, ofSession)
    ofSession.add(stream)
    this.#abandoned += 1
    if (principal !== undefined) this.#abandonedByPrincipal.set(principal, (this.#abandonedByPrincipal.get(principal) ?? 0) + 1)
    return true
  }

  /** A client reads the stream again (a resume), or it ended: no longer abandoned. Harmless twice. */
  adopted (stream: RegisteredStream): void {
    const { sessionId, principal } = stream.owner
    const ofSession = this.#abandonedBySession.get(sessionId)
    if (ofSession === undefined || !ofSession.delete(stream)) return
    if (ofSession.size === 0) this.#abandonedBySession.delete(sessionId)
    this.#abandoned -= 1
    if (principal !== undefined) {
      const left = (this.#abandonedByPrincipal.get(principal) ?? 1) - 1
      if (left === 0) this.#abandonedByPrincipal.delete(principal)
      else this.#abandonedByPrincipal.set(principal, left)
    }
  }

  /** From now on clients that leave are not limited: shutdown ends every stream anyway. */
  beginShutdown (): void {
    this.#shuttingDown = true
  }

  /**
   * Stops every stream (its pending request answered, its end kept) and waits until the store has
   * answered what they asked it to keep, for at most `timeoutMs`: called before the store closes.
   */
  async stopAll (timeoutMs: number): Promise<void> {
    this.#shuttingDown = true
    const streams = [...this.#live]
    for (const stream of streams) stream.stop('shutdown')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.allSettled(streams.map(async (stream) => { await stream.settled() })),
      new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    ])
    clearTimeout(timer)
  }

  #refuse (limit: AbandonedLimit): false {
    this.#onLimit(limit)
    return false
  }
}
