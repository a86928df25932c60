import type { BalanceMode } from '../config/validate-config.js'
import type { SessionStore } from '../sessions/session-store.js'
import { instanceKey } from '../upstream/instance-key.js'
import { UpstreamClient } from '../upstream/upstream-client.js'
import { neverReachedInstance } from './failover-rules.js'

/*
 * The instances of one stateful server behind a route (docs/stateful-upstreams.md): one undici pool
 * each, which of them is healthy, and where a new session goes. Health is this replica's own view:
 * passive (a connection the instance refused or reset takes it out of placement for a while) and,
 * with `healthCheck`, active (an HTTP request per interval; any answer is healthy). A passive
 * ejection only keeps new sessions away; an instance that fails its health check also loses its
 * sessions (each moves at its next request, stateful-failover.ts) and its streams.
 *
 * A busy instance is not a dead one: it fails its health check only after `failureThreshold` checks
 * in a row failed while it sent no byte on any connection (a response head or body chunk of any
 * request to it, counted by its client). So when it fails, nothing in flight there has received a
 * byte since the first of those checks began (any byte would have reset the count), and cutting
 * all of it never cuts a stream that is still receiving.
 */

/** How long a failed instance is left out of placement when no active check brings it back sooner. */
export const PASSIVE_EJECTION_MS = 10_000
/**
 * How long an instance that forgot a session the gateway had just opened on it is left out of
 * placement: the first time, then twice as long each time again, up to the most. An answer is no
 * proof here (its 404s are answers), so only the time, or a session it keeps, brings it back.
 */
export const FORGETFUL_BACKOFF_MS = { first: 5_000, most: 60_000 }
/**
 * How long an active check waits for an answer: the interval, but at least a second (a busy instance
 * is not a dead one) and at most five.
 */
const HEALTH_CHECK_TIMEOUT_MS = { min: 1_000, max: 5_000 }

export interface UpstreamInstance {
  /** The URL as configured, credentials and query included: only the instance's client sees it. */
  readonly url: string
  /** What names the instance in Redis, logs and metrics (upstream/instance-key.ts). */
  readonly key: string
  readonly client: UpstreamClient
}

/** What the health check knows of an instance's signs of life. */
interface Liveness {
  /** Response heads and body chunks received from the instance, on any request. */
  heard: number
  /** Health checks failed in a row with nothing heard from the instance meanwhile. */
  failedChecks: number
}

export interface UpstreamInstancesOptions {
  readonly urls: readonly string[]
  readonly balance: BalanceMode
  readonly route: string
  readonly store: SessionStore
  /** routes[].timeout and limits.maxResponseBytes, as for any upstream client. */
  readonly headersTimeout: number
  readonly maxResponseBytes: number
  /** routes[].healthCheck; null: passive ejection only. */
  readonly healthCheck: { readonly interval: number, readonly failureThreshold: number } | null
  /** Told each time an instance's health changes (the `mcpgw_upstream_instance_up` gauge, a log line). */
  readonly onHealthChanged: (instance: UpstreamInstance, healthy: boolean, reason: string) => void
  readonly now?: () => number
}

export class UpstreamInstances {
  readonly all: readonly UpstreamInstance[]
  readonly #byKey: Map<string, UpstreamInstance>
  /** Passive ejection: instance key → until when it is left out of placement. */
  readonly #ejectedUntil = new Map<string, number>()
  /**
   * Instances that forgot a fresh upstream session (404 at once, docs/stateful-upstreams.md,
   * "Failover"): until when they are left out, and how often in a row they did it.
   */
  readonly #forgetful = new Map<string, { until: number, times: number }>()
  /** Active: the instances whose last health check failed. Their sessions move, their streams end. */
  readonly #failedCheck = new Set<string>()
  /**
   * What to cut when an instance fails a health check: its requests and streams in flight. A Set per
   * instance rather than listeners on one AbortSignal: adding a listener scans the ones already
   * there, and a busy instance has many.
   */
  readonly #inFlight = new Map<string, Set<() => void>>()
  /** The health last told to onHealthChanged, per instance key. */
  readonly #told = new Map<string, boolean>()
  /** Per instance key: the bytes heard from it, and its failed health checks in a row since. */
  readonly #liveness = new Map<string, Liveness>()
  readonly #options: UpstreamInstancesOptions
  readonly #now: () => number
  #turn = 0
  #healthTimer: NodeJS.Timeout | undefined
  #closed = false

  constructor (options: UpstreamInstancesOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
    this.all = options.urls.map((url) => {
      const liveness: Liveness = { heard: 0, failedChecks: 0 }
      const instance: UpstreamInstance = {
        url,
        key: instanceKey(url),
        client: new UpstreamClient(url, options.headersTimeout, options.maxResponseBytes, () => { this.#heardFrom(instance, liveness) })
      }
      this.#liveness.set(instance.key, liveness)
      return instance
    })
    this.#byKey = new Map(this.all.map((instance) => [instance.key, instance]))
    for (const instance of this.all) {
      this.#inFlight.set(instance.key, new Set())
      this.#tell(instance, 'configured')
    }
    if (options.healthCheck !== null) {
      const { interval, failureThreshold } = options.healthCheck
      const timeout = Math.min(HEALTH_CHECK_TIMEOUT_MS.max, Math.max(HEALTH_CHECK_TIMEOUT_MS.min, interval))
      // A round starts `interval` after the one before began, or when it ends if it took longer: rounds
      // never pile up, and the worst-case time to give an instance up is known (docs/stateful-upstreams.md, "Health").
      const round = (): void => {
        const started = performance.now()
        this.#checkAll(timeout, failureThreshold).catch(() => undefined).finally(() => {
          if (this.#closed) return
          this.#healthTimer = setTimeout(round, Math.max(0, started + interval - performance.now()))
          this.#healthTimer.unref()
        })
      }
      this.#healthTimer = setTimeout(round, interval)
      this.#healthTimer.unref()
    }
  }

  /** The configured instance of that key; undefined when the config no longer lists it. */
  byKey (key: string): UpstreamInstance | undefined {
    return this.#byKey.get(key)
  }

  /** Whether new sessions may be placed on the instance: not ejected, passively or by a failed check. */
  isHealthy (instance: UpstreamInstance): boolean {
    if (this.#failedCheck.has(instance.key) || this.#forgetting(instance)) return false
    const until = this.#ejectedUntil.get(instance.key)
    if (until === undefined) return true
    if (until > this.#now()) return false
    // A passive ejection simply runs out: the next placement tries the instance again.
    this.#ejectedUntil.delete(instance.key)
    this.#tell(instance, 'ejection ran out')
    return true
  }

  /**
   * Whether a session on `instance` moves before its request is sent: the instance failed its
   * health check and another one is healthy. A passive ejection only keeps new sessions away: one
   * refused connection must not cost every session of the instance its state; a session leaves when
   * its own request fails.
   */
  shouldLeave (instance: UpstreamInstance): boolean {
    return this.#failedCheck.has(instance.key) && this.all.some((other) => other !== instance && this.isHealthy(other))
  }

  /**
   * Calls `cut` if the instance fails a health check before the returned function is called: what
   * is still waited for or streamed from it ends then.
   */
  whileInFlight (instance: UpstreamInstance, cut: () => void): () => void {
    const inFlight = this.#inFlight.get(instance.key) as Set<() => void>
    inFlight.add(cut)
    return () => { inFlight.delete(cut) }
  }

  /** Passive ejection: the instance refused or dropped a connection. */
  eject (instance: UpstreamInstance, reason: string): void {
    this.#ejectedUntil.set(instance.key, this.#now() + PASSIVE_EJECTION_MS)
    this.#tell(instance, reason)
  }

  /**
   * The instance answered 404 for an upstream session the gateway had just opened on it: it forgets
   * sessions at once (a crash loop, a server that keeps none), and every move to it would cost a
   * replay for nothing. It takes no new session nor move for FORGETFUL_BACKOFF_MS, longer each time
   * in a row. Told once per backoff: concurrent requests that find the same loss add nothing.
   */
  forgotFreshSession (instance: UpstreamInstance): void {
    const now = this.#now()
    const previous = this.#forgetful.get(instance.key)
    if (previous !== undefined && previous.until > now) return
    const times = (previous?.times ?? 0) + 1
    const backoff = Math.min(FORGETFUL_BACKOFF_MS.most, FORGETFUL_BACKOFF_MS.first * 2 ** (times - 1))
    this.#forgetful.set(instance.key, { until: now + backoff, times })
    this.#tell(instance, `forgot the session the gateway had just opened on it: no new session there for ${backoff / 1000}s`)
  }

  /** The instance answered a request of an upstream session with anything but 404: it keeps sessions again. */
  keptSession (instance: UpstreamInstance): void {
    if (this.#forgetful.size > 0 && !this.#forgetting(instance)) this.#forgetful.delete(instance.key)
  }

  /** Whether some instance is left out now for forgetting sessions (what a move that found none tells its client). */
  anyForgetting (): boolean {
    return this.all.some((instance) => this.#forgetting(instance))
  }

  /**
   * The instance answered a request: a passive ejection is over. Its client reports every response
   * head (#heardFrom), whoever made the request.
   */
  answered (instance: UpstreamInstance): void {
    if (this.#ejectedUntil.size > 0 && this.#ejectedUntil.delete(instance.key)) this.#tell(instance, 'answered a request')
  }

  /**
   * Where a new session goes, among the healthy instances not in `excluded`: the one with the fewest
   * live sessions fleet-wide (`leastSessions`; ties by turn) or the next in turn (`roundRobin`).
   * When none is healthy, the unhealthy ones are tried all the same (health is a guess; a request
   * is proof), except those left out for forgetting sessions (their proof is in: a session placed
   * there is lost at once). undefined when no instance is left.
   */
  async place (excluded: ReadonlySet<string> = new Set()): Promise<UpstreamInstance | undefined> {
    const candidates = this.all.filter((instance) => !excluded.has(instance.key) && !this.#forgetting(instance))
    if (candidates.length === 0) return undefined
    const healthy = candidates.filter((instance) => this.isHealthy(instance))
    const pool = healthy.length > 0 ? healthy : candidates
    const start = this.#turn++ % pool.length
    const inTurn = [...pool.slice(start), ...pool.slice(0, start)]
    if (this.#options.balance === 'roundRobin' || inTurn.length === 1) return inTurn[0]
    const counts = await this.#options.store.upstreamSessionCounts(this.#options.route)
    let best = inTurn[0] as UpstreamInstance
    for (const instance of inTurn) {
      if ((counts.get(instance.key) ?? 0) < (counts.get(best.key) ?? 0)) best = instance
    }
    return best
  }

  /** Every instance, the healthy ones first, each group in list order. */
  inHealthOrder (): UpstreamInstance[] {
    const healthy = this.all.filter((instance) => this.isHealthy(instance))
    return [...healthy, ...this.all.filter((instance) => !healthy.includes(instance))]
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
    clearTimeout(this.#healthTimer)
    await Promise.all(this.all.map(async (instance) => { await instance.client.close() }))
  }

  /** Tells onHealthChanged when the instance's health differs from what it last told. */
  #tell (instance: UpstreamInstance, reason: string): void {
    const healthy = this.#isHealthyNow(instance)
    if (this.#told.get(instance.key) === healthy) return
    this.#told.set(instance.key, healthy)
    this.#options.onHealthChanged(instance, healthy, reason)
  }

  /** isHealthy without running out a passive ejection (no report from inside a report). */
  #isHealthyNow (instance: UpstreamInstance): boolean {
    const until = this.#ejectedUntil.get(instance.key)
    return !this.#failedCheck.has(instance.key) && !this.#forgetting(instance) && (until === undefined || until <= this.#now())
  }

  /** Left out for forgetting sessions (forgotFreshSession); when that runs out, the instance is told healthy again. */
  #forgetting (instance: UpstreamInstance): boolean {
    const forgetful = this.#forgetful.get(instance.key)
    if (forgetful === undefined || forgetful.until === 0) return false
    if (forgetful.until > this.#now()) return true
    // Ran out: placed again, and the count of times in a row kept, so that forgetting again backs off longer.
    forgetful.until = 0
    this.#tell(instance, 'the time left out for forgetting sessions ran out')
    return false
  }

  /**
   * A response head or body chunk from the instance, on any request: it is alive, however late its
   * health check answers. Its failed checks in a row start again from none, and a passive ejection
   * is over (it answered).
   */
  #heardFrom (instance: UpstreamInstance, liveness: Liveness): void {
    liveness.heard++
    liveness.failedChecks = 0
    this.answered(instance)
  }

  async #checkAll (timeout: number, failureThreshold: number): Promise<void> {
    await Promise.all(this.all.map(async (instance) => {
      const liveness = this.#liveness.get(instance.key) as Liveness
      const heardBefore = liveness.heard
      try {
        // Any HTTP answer proves the instance serves: a GET without a session is a 400 or 405 from an SDK server.
        const answer = await instance.client.getStream({ accept: 'text/event-stream' }, AbortSignal.timeout(timeout))
        answer.body.destroy()
        if (this.#closed) return
        this.#ejectedUntil.delete(instance.key)
        this.#failedCheck.delete(instance.key)
        this.#tell(instance, 'health check answered')
      } catch (error) {
        if (this.#closed || this.#failedCheck.has(instance.key)) return
        // A refused connection keeps new sessions away at once, as any refused request does (passive).
        if (neverReachedInstance(error)) this.eject(instance, 'refused a health check')
        // Bytes from it while this check waited: busy, not dead. The check does not count.
        if (liveness.heard !== heardBefore) return
        if (++liveness.failedChecks < failureThreshold) return
        this.#failedCheck.add(instance.key)
        this.#tell(instance, `${failureThreshold} health checks failed in a row, and no byte came from it meanwhile`)
        // Nothing in flight there has received a byte since the first of those checks began (any would have reset the count).
        const inFlight = this.#inFlight.get(instance.key) as Set<() => void>
        const cuts = [...inFlight]
        inFlight.clear()
        for (const cut of cuts) cut()
      }
    }))
  }
}
