/*
 * What a benchmark round is and how rounds are summed up, shared by every section of `npm run bench`
 * (docs/performance.md): a scenario is one kind of request sent to one process, a round is one
 * autocannon run of it, and each figure of a scenario is the median of its rounds.
 */

/** Latency is compared at one fixed rate, this share of the lowest capacity measured, so it is not queueing. */
export const LATENCY_LOAD_SHARE = 0.4

/** The processes a request may pass through on its way to the upstream. */
export type ProxyName = 'bare' | 'gateway' | 'gateway-recording' | 'gateway-relaying' | 'gateway-pass-through' | 'bare-stateful' | 'gateway-stateful'

export interface Scenario {
  readonly name: string
  /** The proxy process in the request's path, if any. */
  readonly proxy?: ProxyName
  /** The upstream process in its path: `upstream` unless named. */
  readonly upstream?: 'upstream' | 'upstream-stateful'
  readonly url: () => string
  readonly body: string
  readonly headers?: () => Record<string, string>
}

/** Microseconds of CPU per request: of the proxy in the path, the upstream and Redis. */
export interface CpuPerRequest { proxy?: number, upstream: number, redis: number }

export interface RunResult { requestsPerSecond: number, p50: number, p99: number, errors: number, requests: number, cpu: CpuPerRequest }

/** A capacity round (a fixed number of requests, all answered) or a round at a fixed rate. */
export type RoundLoad = { amount: number } | { duration: number, overallRate?: number }

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

export function summarize (runs: RunResult[]): RunResult {
  const proxies = runs.flatMap((r) => r.cpu.proxy === undefined ? [] : [r.cpu.proxy])
  return {
    requestsPerSecond: Math.round(median(runs.map((r) => r.requestsPerSecond))),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    requests: runs.reduce((sum, r) => sum + r.requests, 0),
    cpu: {
      ...(proxies.length === 0 ? {} : { proxy: median(proxies) }),
      upstream: median(runs.map((r) => r.cpu.upstream)),
      redis: median(runs.map((r) => r.cpu.redis))
    }
  }
}

function formatMicroseconds (value: number | undefined): string {
  return (value === undefined ? '-' : value.toFixed(1)).padStart(9)
}

export function format (result: RunResult): string {
  return `${String(result.requestsPerSecond).padStart(9)}  ${result.p50.toFixed(2).padStart(7)}  ${result.p99.toFixed(2).padStart(7)}  ${String(result.errors).padStart(6)}  ${formatMicroseconds(result.cpu.proxy)}  ${formatMicroseconds(result.cpu.upstream)}  ${formatMicroseconds(result.cpu.redis)}`
}

export const tableHeader = '    req/s   p50 ms   p99 ms  errors  proxy µs  upstr. µs  Redis µs   (CPU per request)'

export function printResults (title: string, results: Record<string, RunResult>): void {
  process.stdout.write(`\n${title.padEnd(36)}${tableHeader}\n`)
  for (const [name, result] of Object.entries(results)) process.stdout.write(`${name.padEnd(36)} ${format(result)}\n`)
}
