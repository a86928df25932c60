import type { BalanceMode } from '../config/validate-config.js'
import type { SessionStore } from '../sessions/session-store.js'
import { UpstreamClient } from '../upstream/upstream-client.js'

/*
 * The instances of one stateful server behind a route (docs/stateful-upstreams.md): one undici pool
 * each, which of them is healthy, and where a new session goes. Health is this replica's own view:
 * passive (a connection the instance refused or reset takes it out of placement for a while) and,
 * with `healthCheck`, active (an HTTP request per interval; any answer is healthy). An unhealthy
 * instance keeps its sessions until a request to it fails: then they move (stateful-failover.ts).
 */

/** How long a failed instance is left out of placement when no active check brings it back sooner. */
export const PASSIVE_EJECTION_MS = 10_000
/** The longest an active check waits for an answer. */
const HEALTH_CHECK_TIMEOUT_MS = 5_000

export interface UpstreamInstance {
  /** The URL as configured: what a session's upstream record names. */
  readonly url: string
  /** What logs and metric labels show of it: origin and path, never credentials or a query. */
  readonly label: string
  readonly client: UpstreamClient
}

/** An instance URL as logs and metrics show it (see UpstreamInstance.label). */
export function instanceLabel (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return 'an unreadable URL'
  }
}

export interface UpstreamInstancesOptions {
  readonly urls: readonly string[]
  readonly balance: BalanceMode
  readonly route: string
  readonly store: SessionStore
  /** routes[].timeout and limits.maxResponseBytes, as for any upstream client. */
  readonly headersTimeout: number
  readonly maxResponseBytes: number
  /** routes[].healthCheck.interval; null: passive ejection only. */
  readonly healthCheckInterval: number | null
  /** Told each time an instance's health changes (the `mcpgw_upstream_instance_up` gauge, a log line). */
  readonly onHealthChanged: (instance: UpstreamInstance, healthy: boolean, reason: string) => void
  readonly now?: () => number
}

export class UpstreamInstances {
  readonly all: readonly UpstreamInstance[]
  readonly #byUrl: Map<string, UpstreamInstance>
  /** Instance URL → when it may be placed again (passive ejection); absent: healthy. */
  readonly #ejectedUntil = new Map<string, number>()
  readonly #options: UpstreamInstancesOptions
  readonly #now: () => number
  #turn = 0
  #healthTimer: NodeJS.Timeout | undefined
  #closed = false

  constructor (options: UpstreamInstancesOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
    this.all = options.urls.map((url) => ({ url, label: instanceLabel(url), client: new UpstreamClient(url, options.headersTimeout, options.maxResponseBytes) }))
    this.#byUrl = new Map(this.all.map((instance) => [instance.url, instance]))
    for (const instance of this.all) options.onHealthChanged(instance, true, 'configured')
    if (options.healthCheckInterval !== null) {
      this.#healthTimer = setInterval(() => { this.#checkAll().catch(() => undefined) }, options.healthCheckInterval)
      this.#healthTimer.unref()
    }
  }

  /** The configured instance of that URL; undefined when the config no longer lists it. */
  byUrl (url: string): UpstreamInstance | undefined {
    return this.#byUrl.get(url)
  }

  isHealthy (instance: UpstreamInstance): boolean {
    const until = this.#ejectedUntil.get(instance.url)
    if (until === undefined) return true
    // Without an active check, an ejection simply runs out: the next request tries the instance again.
    if (this.#options.healthCheckInterval === null && until <= this.#now()) {
      this.#setHealthy(instance, 'ejection ran out')
      return true
    }
    return false
  }

  /**
   * Whether a session on `instance` should move before its request is sent: the instance is ejected
   * and another one is healthy. With nowhere better to go, the request tries it (health is a guess).
   */
  shouldLeave (instance: UpstreamInstance): boolean {
    return !this.isHealthy(instance) && this.all.some((other) => other !== instance && this.isHealthy(other))
  }

  /** Passive ejection: the instance refused or dropped a connection. */
  eject (instance: UpstreamInstance, reason: string): void {
    const known = this.#ejectedUntil.has(instance.url)
    this.#ejectedUntil.set(instance.url, this.#now() + PASSIVE_EJECTION_MS)
    if (!known) this.#options.onHealthChanged(instance, false, reason)
  }

  /**
   * Where a new session goes, among the healthy instances not in `excluded`: the one with the fewest
   * live sessions fleet-wide (`leastSessions`; ties by turn) or the next in turn (`roundRobin`).
   * When none is healthy, the unhealthy ones are tried all the same (health is a guess; a request
   * is proof). undefined when every instance is excluded.
   */
  async place (excluded: ReadonlySet<string> = new Set()): Promise<UpstreamInstance | undefined> {
    const candidates = this.all.filter((instance) => !excluded.has(instance.url))
    if (candidates.length === 0) return undefined
    const healthy = candidates.filter((instance) => this.isHealthy(instance))
    const pool = healthy.length > 0 ? healthy : candidates
    const start = this.#turn++ % pool.length
    const inTurn = [...pool.slice(start), ...pool.slice(0, start)]
    if (this.#options.balance === 'roundRobin' || inTurn.length === 1) return inTurn[0]
    const counts = await this.#options.store.upstreamSessionCounts(this.#options.route)
    let best = inTurn[0] as UpstreamInstance
    for (const instance of inTurn) {
      if ((counts.get(instance.url) ?? 0) < (counts.get(best.url) ?? 0)) best = instance
    }
    return best
  }

  /** Any healthy instance, in turn: for requests that need no session (2026-07-28). */
  any (): UpstreamInstance {
    const healthy = this.all.filter((instance) => this.isHealthy(instance))
    const pool = healthy.length > 0 ? healthy : this.all
    return pool[this.#turn++ % pool.length] as UpstreamInstance
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#healthTimer)
    await Promise.all(this.all.map(async (instance) => { await instance.client.close() }))
  }

  #setHealthy (instance: UpstreamInstance, reason: string): void {
    if (this.#ejectedUntil.delete(instance.url)) this.#options.onHealthChanged(instance, true, reason)
  }

  async #checkAll (): Promise<void> {
    await Promise.all(this.all.map(async (instance) => {
      const timeout = Math.min(HEALTH_CHECK_TIMEOUT_MS, this.#options.healthCheckInterval ?? HEALTH_CHECK_TIMEOUT_MS)
      try {
        // Any HTTP answer proves the instance serves: a GET without a session is a 400 or 405 from an SDK server.
        const answer = await instance.client.getStream({ accept: 'text/event-stream' }, AbortSignal.timeout(timeout))
        answer.body.destroy()
        if (!this.#closed) this.#setHealthy(instance, 'health check answered')
      } catch {
        if (this.#closed) return
        const known = this.#ejectedUntil.has(instance.url)
        // Out of placement until a check answers again (the interval, not the passive ejection, decides).
        this.#ejectedUntil.set(instance.url, Number.POSITIVE_INFINITY)
        if (!known) this.#options.onHealthChanged(instance, false, 'health check failed')
      }
    }))
  }
}
