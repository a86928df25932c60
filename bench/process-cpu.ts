import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/*
 * What `npm run bench` measures that does not depend on how busy the machine is: the CPU time each
 * process spent, from /proc/<pid>/stat (Linux, proc(5)), divided by the requests it served. On a
 * machine with enough cores each process also gets cores of its own (`taskset`), so that requests per
 * second and latency measure the processes rather than their contention for the same cores.
 */

/** The processes of a benchmark run that may be pinned to cores of their own. */
export type BenchRole = 'load generator' | 'upstream' | 'redis' | 'bare' | 'gateway'

/** Below this many cores the processes would have to share cores anyway: none is pinned. */
export const PIN_MIN_CORES = 8

/**
 * Two cores for the load generator and the upstream (each one event loop, plus the threads that
 * collect its garbage), one for each process under measurement: a proxy replica and Redis are
 * single-threaded where it counts.
 */
const pinnedLayout: Readonly<Record<BenchRole, string>> = {
  'load generator': '0-1',
  upstream: '2-3',
  redis: '4',
  bare: '5',
  gateway: '6'
}

export interface CoreLayout {
  /** The cores of each role (`taskset -c` lists), or undefined when nothing is pinned. */
  readonly cores: Readonly<Record<BenchRole, string>> | undefined
  readonly description: string
}

export function coreLayout (availableCores: number): CoreLayout {
  if (availableCores < PIN_MIN_CORES) {
    return {
      cores: undefined,
      description: `not pinned: ${availableCores} cores (< ${PIN_MIN_CORES}), shared by the load generator, the upstream, Redis and the proxies; CPU time per request is each process's own, requests/s and latency measure contention for the cores`
    }
  }
  return {
    cores: pinnedLayout,
    description: `pinned (taskset -c, ${availableCores} cores): ${Object.entries(pinnedLayout).map(([role, cores]) => `${role} ${cores}`).join(', ')}`
  }
}

/** The command and arguments that start `command` on the given cores, or as it is when unpinned. */
export function onCores (cores: string | undefined, command: string, args: readonly string[]): [string, string[]] {
  return cores === undefined ? [command, [...args]] : ['taskset', ['-c', cores, command, ...args]]
}

/** Moves a running process, every thread of it, to the given cores. */
export function pinProcess (pid: number, cores: string): void {
  execFileSync('taskset', ['-a', '-cp', cores, String(pid)], { stdio: 'ignore' })
}

const DEFAULT_CLOCK_TICKS = 100

function readClockTicks (): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isFinite(ticks) && ticks > 0 ? ticks : DEFAULT_CLOCK_TICKS
  } catch {
    return DEFAULT_CLOCK_TICKS
  }
}

const clockTicksPerSecond = readClockTicks()

/** User + system CPU time a process (all its threads) has used since it started, in seconds. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Field 2, the command name, is in parentheses and may contain spaces: count from the last ')'.
  // What follows starts at field 3, so utime and stime (fields 14 and 15) are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond
}

/** CPU seconds of several processes at once, by name. */
export function cpuSnapshot (pids: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]))
}

/** Microseconds of CPU per request of each process between two snapshots. */
export function cpuPerRequest (before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>, requests: number): Record<string, number> {
  return Object.fromEntries(Object.keys(before).map((name) => [name, requests === 0 ? 0 : ((after[name] ?? 0) - (before[name] ?? 0)) * 1e6 / requests]))
}

/**
 * Read and write system calls a process (all its threads) has made, from /proc/<pid>/io (proc(5):
 * syscr, syscw): for a proxy, mostly its socket reads and writes. Writes that Node coalesces (a
 * corked response, an auto-pipelined batch of Redis commands) count once.
 */
export function ioSyscalls (pid: number): { reads: number, writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8')
  return { reads: Number(/^syscr: (\d+)/m.exec(io)?.[1]), writes: Number(/^syscw: (\d+)/m.exec(io)?.[1]) }
}

/**
 * The cores of gateways measured against each other (the resumable-streams comparison): the
 * gateway's cores when pinned; below PIN_MIN_CORES, the last core, shared by all of them (they are
 * measured one at a time). Left to the scheduler, a process's place alone moved its CPU time per
 * request by about 25% on a 2-core machine: two identical gateways came out 1.24× apart, the one
 * started first the dearer, and 0.99× once they shared a core (docs/performance.md).
 */
export function comparedGatewayCores (layout: CoreLayout, availableCores: number): string | undefined {
  return layout.cores?.gateway ?? (availableCores >= 2 ? String(availableCores - 1) : undefined)
}
