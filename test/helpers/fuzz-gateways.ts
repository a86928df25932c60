import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { ChildGatewaySpec, ChildMessage, ChildStats } from './fuzz-gateway-child.js'

/*
 * The parent side of fuzz-gateway-child.ts: starts the gateways under fuzz in their own process
 * (with the TypeScript loader this test process runs under), collects their log lines, and notices
 * when the process dies. A crash is a fact the fuzzer reports (with the stack the process printed),
 * never a hung test; `revive` starts the process again on the same ports so a run can go on.
 */

const CHILD = join(process.cwd(), 'test/helpers/fuzz-gateway-child.ts')
const START_TIMEOUT_MS = 60_000
const REQUEST_TIMEOUT_MS = 30_000
const STDERR_KEPT = 64 * 1024

export interface Crash {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** The end of what the process wrote to stderr: the uncaught error's stack. */
  readonly stderr: string
}

export interface FuzzGateways {
  readonly specs: readonly ChildGatewaySpec[]
  /** `http://127.0.0.1:<port>` of each gateway, by name. */
  origin (name: string): string
  /** Every log line written so far, as written (without the gateway prefix). */
  readonly rawLogs: string[]
  /** Parsed log lines, each with the gateway's name as `gateway`. */
  readonly logs: Array<Record<string, unknown>>
  /** What the process wrote to stderr (start-up noise, a crash's stack). */
  stderr (): string
  /** The crash, when the process has died since it was (re)started. */
  crash (): Crash | undefined
  /** How many times the process died. */
  crashes (): number
  stats (): Promise<ChildStats>
  /**
   * Closes one gateway and starts it again on its port. `whileClosing` runs once closing has begun
   * (requests sent then meet the closing gateway); resolves when the gateway listens again.
   */
  restart (name: string, whileClosing: () => Promise<void>): Promise<void>
  /** Starts the process again after a crash (same ports, same configs). */
  revive (): Promise<void>
  close (): Promise<void>
}

/** The loader flags of this process (tap's TypeScript import), so the child runs TypeScript too. */
function loaderArguments (): string[] {
  return process.execArgv.filter((argument) => argument.startsWith('--import') || argument === '--enable-source-maps')
}

export async function startFuzzGateways (specs: readonly ChildGatewaySpec[]): Promise<FuzzGateways> {
  const rawLogs: string[] = []
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  let child: ChildProcess | undefined
  let crash: Crash | undefined
  let crashes = 0
  let closing = false
  let nextId = 1
  const pending = new Map<number, (message: ChildMessage) => void>()

  function onLine (line: string): void {
    const tab = line.indexOf('\t')
    if (tab < 0) return
    const text = line.slice(tab + 1)
    rawLogs.push(text)
    try {
      logs.push({ ...JSON.parse(text) as Record<string, unknown>, gateway: line.slice(0, tab) })
    } catch {
      logs.push({ gateway: line.slice(0, tab), unparsed: text })
    }
  }

  async function start (): Promise<void> {
    crash = undefined
    const spawned = spawn(process.execPath, [...loaderArguments(), CHILD], {
      env: { ...process.env, FUZZ_GATEWAYS: JSON.stringify(specs) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc']
    })
    child = spawned
    let partial = ''
    spawned.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) onLine(line)
    })
    spawned.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEPT)
    })
    spawned.on('message', (message: ChildMessage) => {
      if (message.type === 'ready') return
      pending.get(message.id)?.(message)
    })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`fuzz gateways did not start in ${START_TIMEOUT_MS} ms: ${stderr}`)) }, START_TIMEOUT_MS)
      spawned.on('message', (message: ChildMessage) => {
        if (message.type === 'ready') {
          clearTimeout(timer)
          resolve()
        }
      })
      spawned.once('exit', (code, signal) => {
        clearTimeout(timer)
        if (!closing) {
          crash = { code, signal, stderr: stderr.slice(-8192) }
          crashes++
        }
        for (const resolvePending of pending.values()) resolvePending({ type: 'restarted', id: 0, error: 'the gateway process exited' })
        pending.clear()
        reject(new Error(`fuzz gateways exited (${String(code ?? signal)}): ${stderr.slice(-4096)}`))
      })
    })
  }

  async function ask<T extends ChildMessage> (message: { type: 'stats' } | { type: 'restart', gateway: string }, onMessage?: (message: ChildMessage) => boolean): Promise<T> {
    const running = child
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) throw new Error('the gateway process is not running')
    const id = nextId++
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new Error(`the gateway process did not answer ${message.type} in ${REQUEST_TIMEOUT_MS} ms`))
      }, REQUEST_TIMEOUT_MS)
      pending.set(id, (answer) => {
        if (onMessage !== undefined && !onMessage(answer)) return
        clearTimeout(timer)
        pending.delete(id)
        if (answer.type === 'restarted' && answer.error !== undefined) reject(new Error(answer.error))
        else resolve(answer as T)
      })
      running.send({ ...message, id })
    })
  }

  await start()
  return {
    specs,
    origin: (name) => {
      const spec = specs.find((candidate) => candidate.name === name)
      if (spec === undefined) throw new Error(`no gateway ${name}`)
      return `http://127.0.0.1:${spec.port}`
    },
    rawLogs,
    logs,
    stderr: () => stderr,
    crash: () => crash,
    crashes: () => crashes,
    stats: async () => (await ask<Extract<ChildMessage, { type: 'stats' }>>({ type: 'stats' })).stats,
    restart: async (name, whileClosing) => {
      let during: Promise<void> | undefined
      await ask({ type: 'restart', gateway: name }, (message) => {
        if (message.type === 'closing') {
          during = whileClosing()
          return false
        }
        return true
      })
      await during
    },
    revive: async () => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) return
      stderr = ''
      await start()
    },
    close: async () => {
      closing = true
      const running = child
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
      // Disconnecting lets it exit by itself (its coverage is written then); killed if it does not.
      running.disconnect()
      const timer = setTimeout(() => running.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }
  }
}
