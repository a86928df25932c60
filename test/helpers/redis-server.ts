import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { eventually } from './eventually.js'

/*
 * A real redis-server for one test file: a free random port, its own temporary data directory, never
 * the machine's 6379. Tests may stop and start it again on the same port (fault tests).
 */

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export interface TestRedis {
  readonly port: number
  readonly url: string
  start (): Promise<void>
  stop (): Promise<void>
  /** A plain client for inspecting what the gateway stored. */
  client (): Redis
  close (): Promise<void>
}

const READY_TIMEOUT_MS = 10_000

async function waitForPing (port: number): Promise<void> {
  await eventually(async () => {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      return await probe.ping() === 'PONG'
    } finally {
      probe.disconnect()
    }
  }, { timeout: READY_TIMEOUT_MS, interval: 50, description: `redis-server on port ${port} to answer PING` })
}

export interface TestRedisOptions {
  /** A fixed port (cluster nodes need port + 10000 free too); a free random one by default. */
  readonly port?: number
  /** Extra redis-server arguments, e.g. ['--cluster-enabled', 'yes'] or ['--replicaof', ...]. */
  readonly args?: readonly string[]
}

export async function startTestRedis (options: TestRedisOptions = {}): Promise<TestRedis> {
  const port = options.port ?? await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-redis-'))
  let child: ChildProcess | undefined
  const clients: Redis[] = []

  async function start (): Promise<void> {
    child = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
      '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning',
      ...(options.args ?? [])
    ], { stdio: 'ignore' })
    await waitForPing(port)
  }

  async function stop (): Promise<void> {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    running.kill('SIGKILL')
    await exited
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    stop,
    client () {
      const client = new Redis({ port, host: '127.0.0.1' })
      client.on('error', () => {})
      clients.push(client)
      return client
    },
    async close () {
      for (const client of clients) client.disconnect()
      await stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
}
