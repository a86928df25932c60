import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/*
 * A gateway as its own OS process, started through the built CLI (`npm run build` runs before the
 * tests), the way a replica runs in production. The config is written as JSON, which is YAML.
 */

const cli = join(process.cwd(), 'dist/src/cli.js')
const START_TIMEOUT_MS = 15_000

export interface GatewayProcess {
  readonly origin: string
  readonly port: number
  /** The running process's id (for /proc), undefined while stopped. */
  readonly pid: number | undefined
  /** Sends SIGTERM and resolves with the exit code. */
  stop (): Promise<number | null>
  /** Starts the process again on the same port with the same config. */
  start (): Promise<void>
  /** Sends a signal to the running process without waiting. */
  signal (name: NodeJS.Signals): void
  close (): Promise<void>
}

export interface GatewayProcessOptions {
  /** Node's own flags, e.g. the heap a container's memory limit gives it. */
  readonly nodeArguments?: readonly string[]
}

export async function startGatewayProcess (config: Record<string, unknown>, port: number, options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-process-'))
  const file = join(dir, 'gateway.yaml')
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port }, log: { level: 'warn' } }))
  let child: ChildProcess | undefined

  async function start (): Promise<void> {
    const spawned = spawn(process.execPath, [...(options.nodeArguments ?? []), cli, '--config', file], { env: { PATH: process.env.PATH, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] })
    child = spawned
    await new Promise<void>((resolve, reject) => {
      let output = ''
      let started = false
      const timer = setTimeout(() => reject(new Error(`gateway on ${port} did not start: ${output}`)), START_TIMEOUT_MS)
      // Keeps draining stdout after start-up (a full pipe would block the gateway), without keeping it.
      const onData = (chunk: Buffer): void => {
        if (started) return
        output += chunk.toString()
        if (output.includes('Server listening at')) { started = true; clearTimeout(timer); resolve() }
      }
      spawned.stdout?.on('data', onData)
      spawned.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
      spawned.once('exit', (code) => { clearTimeout(timer); reject(new Error(`gateway on ${port} exited with ${String(code)}: ${output}`)) })
    })
  }

  async function stop (): Promise<number | null> {
    const running = child
    if (running === undefined || running.exitCode !== null) return running?.exitCode ?? null
    const exited = new Promise<number | null>((resolve) => running.once('exit', (code) => resolve(code)))
    running.kill('SIGTERM')
    return await exited
  }

  await start()
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    get pid () { return child?.exitCode === null ? child.pid : undefined },
    stop,
    start,
    signal: (name) => { child?.kill(name) },
    close: async () => {
      if (child !== undefined && child.exitCode === null) child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  }
}
