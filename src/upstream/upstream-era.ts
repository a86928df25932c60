import type { UpstreamEra } from '../config/validate-config.js'

/*
 * Which era a route's upstream speaks (docs/era-bridge.md): configured (`legacy`, `modern`), or, for
 * `auto`, asked with `server/discover` and remembered once the upstream has given a definitive
 * answer. A transient failure (unreachable, 5xx, an auth challenge, a timeout) decides nothing: the
 * request goes on as legacy, and the upstream is asked again by a later request once a backoff has
 * passed (1 s, doubling up to a minute). The probe carries the asking client's Authorization, so
 * an upstream that requires auth can answer it.
 */

export type KnownEra = 'legacy' | 'modern'

/** Asks the upstream; resolves with a definitive era, rejects when the answer decides nothing. */
export type EraQuestion = (headers: Record<string, string>) => Promise<KnownEra>

const FIRST_RETRY_DELAY_MS = 1_000
const MAX_RETRY_DELAY_MS = 60_000

export class UpstreamEraProbe {
  readonly #configured: UpstreamEra
  readonly #ask: EraQuestion
  readonly #onProbeFailed: (error: unknown, retryInMs: number) => void
  readonly #onDecided: (era: KnownEra) => void
  readonly #now: () => number
  #probe: Promise<KnownEra> | undefined
  #known: KnownEra | undefined
  #retryDelay = 0
  #retryAt = 0

  /**
   * `onProbeFailed` hears why a probe decided nothing and when it may be asked again;
   * `onDecided` hears the era once it is known (also a configured one, at once).
   */
  constructor (configured: UpstreamEra, ask: EraQuestion, hooks: { onProbeFailed: (error: unknown, retryInMs: number) => void, onDecided: (era: KnownEra) => void, now?: () => number }) {
    this.#configured = configured
    this.#ask = ask
    this.#onProbeFailed = hooks.onProbeFailed
    this.#onDecided = hooks.onDecided
    this.#now = hooks.now ?? Date.now
    if (configured !== 'auto') this.#onDecided(configured)
  }

  /** The era when it is already known (configured, or probed), without waiting. */
  knownEra (): KnownEra | undefined {
    return this.#configured !== 'auto' ? this.#configured : this.#known
  }

  /** The era, asking the upstream (with `headers`) when it is not known and the backoff allows. */
  async era (headers: Record<string, string> = {}): Promise<KnownEra> {
    const known = this.knownEra()
    if (known !== undefined) return known
    if (this.#probe === undefined && this.#now() < this.#retryAt) return 'legacy'
    this.#probe ??= this.#ask(headers).then((era) => {
      this.#known = era
      this.#onDecided(era)
      return era
    }, (error: unknown) => {
      this.#probe = undefined
      this.#retryDelay = Math.min(MAX_RETRY_DELAY_MS, this.#retryDelay === 0 ? FIRST_RETRY_DELAY_MS : this.#retryDelay * 2)
      this.#retryAt = this.#now() + this.#retryDelay
      this.#onProbeFailed(error, this.#retryDelay)
      return 'legacy' as const
    })
    return await this.#probe
  }
}
