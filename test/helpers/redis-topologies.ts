import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { eventually } from './eventually.js'
import { freePort, startTestRedis, type TestRedis } from './redis-server.js'

/* Real multi-process Redis topologies for the scale-out tests (Cluster and Sentinel, docs/scaling.md), all on 127.0.0.1. */

const run = promisify(execFile)

async function portIsFree (port: number): Promise<boolean> {
  const server = createServer()
  return await new Promise((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A port whose cluster bus port (+10000) is free as well. */
async function freeClusterPort (taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 35_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if (await portIsFree(port) && await portIsFree(port + 10_000)) return port
  }
  throw new Error('no free port pair for a cluster node')
}

async function waitUntil (what: string, condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  await eventually(condition, { timeout: timeoutMs, interval: 100, description: what })
}

function client (port: number): Redis {
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  return redis
}

export interface TestCluster {
  readonly nodes: readonly TestRedis[]
  readonly urls: readonly string[]
  close (): Promise<void>
}

/** Three masters, no replicas, all 16384 slots assigned (`redis-cli --cluster create`). */
export async function startTestCluster (masters = 3): Promise<TestCluster> {
  const taken = new Set<number>()
  const nodes: TestRedis[] = []
  try {
    for (let index = 0; index < masters; index++) {
      const port = await freeClusterPort(taken)
      taken.add(port)
      taken.add(port + 10_000)
      nodes.push(await startTestRedis({ port, args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'] }))
    }
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes'])
    for (const node of nodes) {
      const probe = client(node.port)
      try {
        await waitUntil(`cluster_state:ok on ${node.port}`, async () => (await probe.cluster('INFO')).includes('cluster_state:ok'))
      } finally {
        probe.disconnect()
      }
    }
  } catch (error) {
    await Promise.all(nodes.map(async (node) => await node.close()))
    throw error
  }
  return {
    nodes,
    urls: nodes.map((node) => node.url),
    close: async () => { await Promise.all(nodes.map(async (node) => await node.close())) }
  }
}

export interface TestSentinel {
  readonly master: TestRedis
  readonly replica: TestRedis
  readonly sentinelPort: number
  readonly name: string
  /** The port of the master as the sentinel currently reports it. */
  currentMasterPort (): Promise<number>
  close (): Promise<void>
}

/** A master, one replica and one sentinel (quorum 1) with a fast failover for tests. */
export async function startTestSentinel (): Promise<TestSentinel> {
  const name = 'mymaster'
  const master = await startTestRedis()
  const replica = await startTestRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
  const sentinelPort = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-sentinel-'))
  const configFile = join(dir, 'sentinel.conf')
  await writeFile(configFile, [
    `port ${sentinelPort}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
    `sentinel down-after-milliseconds ${name} 500`,
    `sentinel failover-timeout ${name} 2000`,
    `sentinel parallel-syncs ${name} 1`,
    ''
  ].join('\n'))
  const sentinel: ChildProcess = spawn('redis-server', [configFile, '--sentinel'], { stdio: 'ignore' })
  const sentinelClient = client(sentinelPort)
  const currentMasterPort = async (): Promise<number> => {
    const address = await sentinelClient.call('SENTINEL', 'get-master-addr-by-name', name) as [string, string] | null
    return Number(address?.[1] ?? 0)
  }
  const replicaClient = client(replica.port)
  await waitUntil('the replica to sync', async () => (await replicaClient.info('replication')).includes('master_link_status:up'))
  replicaClient.disconnect()
  await waitUntil('the sentinel to see the master', async () => await currentMasterPort() === master.port)
  await waitUntil('the sentinel to know the replica', async () => {
    const replicas = await sentinelClient.call('SENTINEL', 'replicas', name) as unknown[][]
    return replicas.length > 0
  })
  return {
    master,
    replica,
    sentinelPort,
    name,
    currentMasterPort,
    close: async () => {
      sentinelClient.disconnect()
      if (sentinel.exitCode === null) {
        const exited = new Promise<void>((resolve) => sentinel.once('exit', () => resolve()))
        sentinel.kill('SIGKILL')
        await exited
      }
      await Promise.all([master.close(), replica.close()])
      await rm(dir, { recursive: true, force: true })
    }
  }
}
