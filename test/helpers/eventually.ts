import { setTimeout as sleep } from 'node:timers/promises'

/*
 * Tests wait on facts, not on time (docs/testing.md): instead of sleeping "long enough", poll the
 * condition the test is waiting for until a deadline.
 *
 * Contract: `check` (sync or async) passes when it returns a truthy value; that value is returned.
 * A falsy value or a thrown error / rejected promise means "not yet": it is tried again every
 * `interval` ms. At the deadline `eventually` rejects with the description and the last value or
 * error seen. It never hangs: an attempt still running at the deadline is abandoned, not awaited.
 */

export interface EventuallyOptions {
  /** Fail after this many milliseconds. */
  readonly timeout: number
  /** Pause between attempts, in milliseconds (default 25; 0 yields to the event loop only). */
  readonly interval?: number
  /** What is being waited for, for the failure message. */
  readonly description?: string
}

const DEFAULT_INTERVAL_MS = 25

/** What a passing check can return: its value without the falsy members. */
export type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>

type Attempt<T> = { readonly kind: 'value', readonly value: T } | { readonly kind: 'error', readonly error: unknown }

function describeLast (last: Attempt<unknown> | undefined): string {
  if (last === undefined) return 'no attempt finished'
  if (last.kind === 'error') return `last error: ${last.error instanceof Error ? last.error.stack ?? last.error.message : String(last.error)}`
  let shown: string
  try {
    shown = JSON.stringify(last.value) ?? String(last.value)
  } catch {
    shown = String(last.value)
  }
  return `last value: ${shown}`
}

export async function eventually<T> (check: () => T | Promise<T>, options: EventuallyOptions): Promise<Truthy<T>> {
  const interval = options.interval ?? DEFAULT_INTERVAL_MS
  const started = Date.now()
  const deadline = started + options.timeout
  let last: Attempt<T> | undefined
  let attempts = 0
  for (;;) {
    attempts++
    const remaining = deadline - Date.now()
    let timer: NodeJS.Timeout | undefined
    const outOfTime = new Promise<'out of time'>((resolve) => { timer = setTimeout(() => resolve('out of time'), Math.max(remaining, 0)) })
    const attempt = (async (): Promise<Attempt<T>> => {
      try {
        return { kind: 'value', value: await check() }
      } catch (error) {
        return { kind: 'error', error }
      }
    })()
    const outcome = await Promise.race([attempt, outOfTime])
    clearTimeout(timer)
    if (outcome !== 'out of time') {
      last = outcome
      if (outcome.kind === 'value' && Boolean(outcome.value)) return outcome.value as Truthy<T>
    }
    if (outcome === 'out of time' || Date.now() >= deadline) {
      const what = options.description ?? 'a condition'
      const pending = outcome === 'out of time' ? ' (the last attempt was still running)' : ''
      throw new Error(`timed out after ${Date.now() - started} ms (${attempts} attempts) waiting for ${what}${pending}; ${describeLast(last)}`)
    }
    // The poll interval, not a wait for something: the next attempt checks the fact again. The last
    // attempt runs at the deadline.
    const pause = Math.min(interval, deadline - Date.now())
    if (pause > 0) await sleep(pause)
    else await new Promise((resolve) => setImmediate(resolve))
  }
}
