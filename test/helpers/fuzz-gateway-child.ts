import { createHook } from 'node:async_hooks'
import type { FastifyInstance } from 'fastify'
import type { Socket } from 'node:net'
import { Writable } from 'node:stream'
import { validateConfig } from '../../src/config/validate-config.js'
import { buildGateway } from '../../src/gateway.js'

/*
 * The gateways under fuzz, in a process of their own (started by fuzz-gateways.ts): an uncaught
 * exception kills this process exactly as it would kill a replica in production, and the fuzzer
 * sees the exit and the stack instead of a hung test. Each gateway's JSON log lines go to stdout,
 * prefixed with its name and a tab. Over IPC it answers what only this process can see: its live
 * timers (every Timeout object, unref'd ones included, grouped by the code that created it), its
 * ref'd timers as `process.getActiveResourcesInfo()` counts them, and each gateway's open
 * connections; and it restarts one gateway on the same port (close, then build and listen again).
 */

export interface ChildGatewaySpec {
  readonly name: string
  readonly host: string
  readonly port: number
  /** Raw config (the YAML's shape), without `listen.host`/`listen.port`. */
  readonly config: Record<string, unknown>
}

export type ChildRequest =
  | { readonly type: 'stats', readonly id: number }
  | { readonly type: 'restart', readonly id: number, readonly gateway: string }

export interface ChildStats {
  /** Live Timeout objects by the first frame of ours (or the package) that created them. */
  readonly timersBySite: Record<string, number>
  /** `process.getActiveResourcesInfo()` count of Timeout: the ref'd timers. */
  readonly refTimeouts: number
  readonly connections: Record<string, number>
  /** The client ports of the connections the gateway has read bytes from (a request begun). */
  readonly reading: Record<string, number[]>
}

export type ChildMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'stats', readonly id: number, readonly stats: ChildStats }
  | { readonly type: 'closing', readonly id: number }
  | { readonly type: 'restarted', readonly id: number, readonly error?: string }

Error.stackTraceLimit = 20
const liveTimers = new Map<number, Error>()
createHook({
  init (asyncId, type) {
    // The Error is kept, its stack formatted only when asked for (formatting is the costly part).
    if (type === 'Timeout') liveTimers.set(asyncId, new Error('timer'))
  },
  destroy (asyncId) {
    liveTimers.delete(asyncId)
  }
}).enable()

/** Where a timer comes from: the first stack frame in our sources, else the package, else Node. */
function timerSite (error: Error): string {
  const frames = (error.stack ?? '').split('\n').slice(1).map((line) => line.trim())
  for (const frame of frames) {
    const source = /\/(src\/[^:)]+):\d+/.exec(frame)
    if (source !== null && !frame.includes('node_modules')) {
      const functionName = /^at (?:async )?([^\s(]+) \(/.exec(frame)?.[1]
      return `${source[1] as string}${functionName === undefined ? '' : ` ${functionName}`}`
    }
  }
  for (const frame of frames) {
    const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(frame)
    if (dependency !== null) return `package ${dependency[1] as string}`
  }
  return 'node'
}

const sites = new Map<number, string>()

function stats (): ChildStats {
  const timersBySite: Record<string, number> = {}
  for (const known of sites.keys()) if (!liveTimers.has(known)) sites.delete(known)
  for (const [asyncId, error] of liveTimers) {
    const site = sites.get(asyncId) ?? timerSite(error)
    sites.set(asyncId, site)
    timersBySite[site] = (timersBySite[site] ?? 0) + 1
  }
  const connections: Record<string, number> = {}
  const reading: Record<string, number[]> = {}
  for (const [name, running] of gateways) {
    connections[name] = running.connections.size
    reading[name] = [...running.connections].filter((socket) => socket.bytesRead > 0).map((socket) => socket.remotePort ?? 0)
  }
  return { timersBySite, refTimeouts: process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length, connections, reading }
}

interface Running {
  app: FastifyInstance
  readonly connections: Set<Socket>
}

const specs = JSON.parse(process.env.FUZZ_GATEWAYS ?? '[]') as ChildGatewaySpec[]
const gateways = new Map<string, Running>()

async function start (spec: ChildGatewaySpec): Promise<void> {
  const config = validateConfig({ ...spec.config, listen: { ...(spec.config.listen as Record<string, unknown> | undefined), host: spec.host, port: spec.port } })
  const logDestination = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      const lines = chunk.toString('utf8').split('\n').filter((line) => line !== '')
      process.stdout.write(lines.map((line) => `${spec.name}\t${line}\n`).join(''), () => { callback() })
    }
  })
  const app = await buildGateway(config, { logDestination, env: {} })
  const connections = new Set<Socket>()
  app.server.on('connection', (socket: Socket) => {
    connections.add(socket)
    socket.once('close', () => connections.delete(socket))
  })
  await app.listen({ host: spec.host, port: spec.port })
  gateways.set(spec.name, { app, connections })
}

function send (message: ChildMessage): void {
  process.send?.(message)
}

process.on('message', (message: ChildRequest) => {
  if (message.type === 'stats') {
    send({ type: 'stats', id: message.id, stats: stats() })
    return
  }
  const spec = specs.find((candidate) => candidate.name === message.gateway)
  const running = gateways.get(message.gateway)
  if (spec === undefined || running === undefined) {
    send({ type: 'restarted', id: message.id, error: `no gateway ${message.gateway}` })
    return
  }
  const closed = running.app.close()
  // Told once closing has begun: the fuzzer sends its requests into the closing gateway then.
  setImmediate(() => { send({ type: 'closing', id: message.id }) })
  closed.then(async () => { await start(spec) }).then(() => {
    send({ type: 'restarted', id: message.id })
  }, (error: unknown) => {
    send({ type: 'restarted', id: message.id, error: String((error as Error).stack ?? error) })
  })
})

// The parent went away: nothing is left running.
process.on('disconnect', () => { process.exit(0) })

for (const spec of specs) await start(spec)
send({ type: 'ready' })
