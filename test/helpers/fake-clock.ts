/*
 * A clock the test moves by hand, for code that takes `now: () => number` (the memory session
 * store): time is the behaviour under test, so the test sets it instead of sleeping through it.
 */
export class FakeClock {
  #time: number
  readonly #start: number

  constructor (start: number = Date.now()) {
    this.#time = start
    this.#start = start
  }

  /** Pass this as the clock: `new MemorySessionStore(timeouts, clock.now)`. */
  readonly now = (): number => this.#time

  advance (ms: number): void {
    this.#time += ms
  }

  /** Milliseconds moved since the clock was made. */
  elapsed (): number {
    return this.#time - this.#start
  }
}
