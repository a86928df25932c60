import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, startTestRedis, type TestRedis } from '../../test/helpers/redis-server.js'

/*
 * The processes of a soak run: a real redis-server (keyspace events on, as docs/operating.md asks,
 * so idle expiry reaches the replicas) and gateway replicas started from the built CLI, and what is
 * measured on them from outside: resident memory (/proc/<pid>/status) and the TCP connections they
 * still hold to the upstreams (/proc/net/tcp matched against /proc/<pid>/fd).
 */

/** The repository root: the nearest directory above this file with a package.json (run from dist/ or, in tests, from source). */
function repositoryRoot (): string {
  let directory = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(directory, 'package.json')) && dirname(directory) !== directory) directory = dirname(directory)
  return directory
}

const cli = join(repositoryRoot(), 'dist/src/cli.js')
const START_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 10_000
/** Log lines at warn (40) and above are kept per message, for the report. */
const WARN_LEVEL = 40
const KEPT_LOG_SAMPLES = 3

export async function startSoakRedis (): Promise<TestRedis> {
  return await startTestRedis({ args: ['--notify-keyspace-events', 'Ex'] })
}

export interface LogSummary {
  /** Lines at warn and above, counted by level name and message. */
  readonly counts: Map<string, number>
  /** The first few lines of each message, as written. */
  readonly samples: Map<string, string[]>
}

export interface GatewayReplica {
  readonly name: string
  readonly origin: string
  readonly pid: number
  readonly log: LogSummary
  stop (): Promise<void>
}

const levelNames: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' }

function recordLogLine (line: string, log: LogSummary): void {
  let parsed: { level?: unknown, msg?: unknown }
  try {
    parsed = JSON.parse(line) as { level?: unknown, msg?: unknown }
  } catch {
    parsed = { level: 50, msg: line.slice(0, 200) }
  }
  if (typeof parsed.level !== 'number' || parsed.level < WARN_LEVEL) return
  const key = `${levelNames[parsed.level] ?? String(parsed.level)}: ${String(parsed.msg)}`
  log.counts.set(key, (log.counts.get(key) ?? 0) + 1)
  const samples = log.samples.get(key) ?? []
  if (samples.length < KEPT_LOG_SAMPLES) samples.push(line.slice(0, 600))
  log.samples.set(key, samples)
}

/** Starts one replica from the built CLI with `config` (written as JSON, which is YAML). */
export async function startGatewayReplica (name: string, config: Record<string, unknown>): Promise<GatewayReplica> {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-soak-'))
  const file = join(dir, 'gateway.yaml')
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port }, log: { level: 'warn' } }))
  const log: LogSummary = { counts: new Map(), samples: new Map() }
  const child: ChildProcess = spawn(process.execPath, [cli, '--config', file], {
    env: { PATH: process.env.PATH, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let pending = ''
  let output = ''
  let started = false
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway ${name} did not start: ${output}`)), START_TIMEOUT_MS)
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString()
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) {
        if (!started) {
          output += line + '\n'
          if (line.includes('Server listening at')) {
            started = true
            clearTimeout(timer)
            resolve()
          }
        }
        recordLogLine(line, log)
      }
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') recordLogLine(line, log)
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`gateway ${name} exited with ${String(code)}: ${output}`))
    })
  })
  try {
    await listening
  } catch (error) {
    child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  return {
    name,
    origin: `http://127.0.0.1:${port}`,
    pid: child.pid as number,
    log,
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
        await exited
        clearTimeout(timer)
      }
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/** Resident set size of a process in KiB, or undefined once it is gone. */
export async function residentKiB (pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

export interface MemoryRange { start: number, peak: number, end: number }

/** Samples each pid's RSS every `intervalMs` until stopped; `finish` takes the end sample. */
export function sampleMemory (pids: readonly number[], intervalMs = 1_000): { ranges: () => MemoryRange[], finish: () => Promise<MemoryRange[]> } {
  const ranges: Array<MemoryRange | undefined> = pids.map(() => undefined)
  async function sample (): Promise<void> {
    await Promise.all(pids.map(async (pid, index) => {
      const kib = await residentKiB(pid)
      if (kib === undefined) return
      const range = ranges[index]
      if (range === undefined) ranges[index] = { start: kib, peak: kib, end: kib }
      else {
        range.peak = Math.max(range.peak, kib)
        range.end = kib
      }
    }))
  }
  const first = sample()
  const timer = setInterval(() => { sample().catch(() => undefined) }, intervalMs)
  const current = (): MemoryRange[] => ranges.map((range) => range ?? { start: 0, peak: 0, end: 0 })
  return {
    ranges: current,
    async finish () {
      clearInterval(timer)
      await first
      await sample()
      return current()
    }
  }
}

/** Socket inodes a process holds (`socket:[inode]` links in /proc/<pid>/fd). */
async function socketInodes (pid: number): Promise<Set<string>> {
  const inodes = new Set<string>()
  let entries: string[]
  try {
    entries = await readdir(`/proc/${pid}/fd`)
  } catch {
    return inodes
  }
  await Promise.all(entries.map(async (entry) => {
    try {
      const target = await readlink(`/proc/${pid}/fd/${entry}`)
      const match = /^socket:\[(\d+)\]$/.exec(target)
      if (match !== null) inodes.add(match[1] as string)
    } catch {
      // The descriptor closed between readdir and readlink.
    }
  }))
  return inodes
}

const ESTABLISHED = '01'

/** Which end of a connection a port is matched against. */
export type PortSide = 'remote' | 'local'

/**
 * ESTABLISHED TCP connections held by the given processes whose remote (or local) port is one of
 * `ports`: /proc/net/tcp and tcp6 rows (`sl local rem st ... inode`, addresses as hex `ADDR:PORT`)
 * matched by inode against the processes' descriptors.
 */
export async function establishedConnections (pids: readonly number[], ports: readonly number[], side: PortSide = 'remote'): Promise<number> {
  const held = new Set<string>()
  for (const pid of pids) for (const inode of await socketInodes(pid)) held.add(inode)
  const wanted = new Set(ports)
  const column = side === 'remote' ? 2 : 1
  let count = 0
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = await readFile(table, 'utf8')
    } catch {
      continue
    }
    for (const row of text.split('\n').slice(1)) {
      const fields = row.trim().split(/\s+/)
      if (fields.length < 10) continue
      const port = parseInt((fields[column] as string).split(':')[1] ?? '', 16)
      if (fields[3] === ESTABLISHED && wanted.has(port) && held.has(fields[9] as string)) count++
    }
  }
  return count
}
