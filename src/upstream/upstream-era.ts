import type { UpstreamEra } from '../config/validate-config.js'

/*
 * Which era a route's upstream speaks (docs/era-bridge.md): configured (`legacy`, `modern`), or, for
 * `auto`, asked once per route and replica with `server/discover` and remembered. A probe that
 * fails is asked again by the next request; until the upstream has answered, the route treats it
 * as legacy.
 */

export type KnownEra = 'legacy' | 'modern'

export class UpstreamEraProbe {
  readonly #configured: UpstreamEra
  readonly #speaksModern: () => Promise<boolean>
  readonly #onProbeFailed: (error: unknown) => void
  #probe: Promise<KnownEra> | undefined
  #known: KnownEra | undefined

  /**
   * `speaksModern` asks the upstream; it resolves true when it answers as a 2026-07-28 server.
   * `onProbeFailed` hears why a probe failed (the request then goes on as legacy).
   */
  constructor (configured: UpstreamEra, speaksModern: () => Promise<boolean>, onProbeFailed: (error: unknown) => void) {
    this.#configured = configured
    this.#speaksModern = speaksModern
    this.#onProbeFailed = onProbeFailed
  }

  /** The era when it is already known (configured, or probed), without waiting. */
  knownEra (): KnownEra | undefined {
    return this.#configured !== 'auto' ? this.#configured : this.#known
  }

  /** The era, asking the upstream once when it is not known yet. */
  async era (): Promise<KnownEra> {
    const known = this.knownEra()
    if (known !== undefined) return known
    this.#probe ??= this.#speaksModern().then((modern) => {
      this.#known = modern ? 'modern' : 'legacy'
      return this.#known
    }, (error: unknown) => {
      this.#probe = undefined
      throw error
    })
    return await this.#probe.catch((error: unknown) => {
      this.#onProbeFailed(error)
      return 'legacy' as const
    })
  }
}
