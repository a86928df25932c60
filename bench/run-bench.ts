import autocannon from 'autocannon'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { validateConfig, type RedisConfig } from '../src/config/validate-config.js'
import { RedisSessionStore } from '../src/sessions/redis-session-store.js'
import { mintSessionId } from '../src/sessions/session-id.js'
import { startTestRedis } from '../test/helpers/redis-server.js'
import { renderChart } from './render-chart.js'

/*
 * `npm run bench` (docs/performance.md): what the gateway costs. Real Redis, a minimal upstream, a bare
 * @fastify/http-proxy and the gateway, each in its own process; autocannon from this one. Scenarios
 * run in alternating rounds (A/B/A/B...) so that machine noise hits all of them alike; each figure is
 * the median of its rounds. Never part of `npm test`: numbers are reported, not asserted.
 */

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const DURATION_S = Number(process.env.BENCH_DURATION ?? 4)
// Enough concurrency that throughput measures capacity, not connections ÷ latency.
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 128)
const MEMORY_SESSIONS = 50_000
/** Latency at equal load is measured below capacity, with fewer connections, so it is not queueing. */
const LATENCY_CONNECTIONS = 32
const LATENCY_LOAD_SHARE = 0.4
const root = fileURLToPath(new URL('../..', import.meta.url))
const serversScript = join(root, 'dist/bench/bench-servers.js')
const resultsDir = join(root, 'bench/results')

interface Scenario {
  readonly name: string
  readonly url: () => string
  readonly body: string
  readonly headers?: () => Record<string, string>
}

interface RunResult { requestsPerSecond: number, p50: number, p99: number, errors: number, requests: number }

const toolsList = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
const initialize = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: { roots: { listChanged: true } }, clientInfo: { name: 'bench-client', version: '1.0.0' } } })
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

async function startServer (role: string, ...args: string[]): Promise<{ port: number, child: ChildProcess }> {
  // BENCH_PROFILE=1: CPU profiles of the proxies into bench/profiles (open them in Chrome DevTools).
  const profile = process.env.BENCH_PROFILE === '1' && role !== 'upstream' ? ['--cpu-prof', `--cpu-prof-dir=${join(root, 'bench/profiles')}`] : []
  const child = spawn(process.execPath, [...profile, serversScript, role, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const match = /listening (\d+)/.exec(chunk.toString())
      if (match !== null) resolve(Number(match[1]))
    })
    child.once('exit', (code) => reject(new Error(`${role} exited with ${String(code)}`)))
  })
  return { port, child }
}

async function run (scenario: Scenario, overallRate?: number): Promise<RunResult> {
  const result = await autocannon({
    url: scenario.url(),
    method: 'POST',
    headers: { ...mcpHeaders, ...scenario.headers?.() },
    body: scenario.body,
    connections: overallRate === undefined ? CONNECTIONS : LATENCY_CONNECTIONS,
    duration: DURATION_S,
    ...(overallRate === undefined ? {} : { overallRate })
  })
  return {
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    requests: result.requests.total
  }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

function summarize (runs: RunResult[]): RunResult {
  return {
    requestsPerSecond: Math.round(median(runs.map((r) => r.requestsPerSecond))),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    requests: runs.reduce((sum, r) => sum + r.requests, 0)
  }
}

/**
 * Redis round trips the gateway has made so far, from its own metrics (every store call is timed,
 * one sample per round trip). Redis's commandstats would not do: it also counts the commands a Lua
 * script runs inside the one EVALSHA.
 */
async function gatewayRoundTrips (metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text()
  let total = 0
  for (const match of text.matchAll(/^mcpgw_redis_duration_seconds_count\{[^}]*\} (\d+)/gm)) total += Number(match[1])
  return total
}

/** EVALSHA calls Redis served, the server-side view of the same number. */
async function redisScriptCalls (redis: Redis): Promise<number> {
  const stats = await redis.info('commandstats')
  return Number(/^cmdstat_evalsha:calls=(\d+)/m.exec(stats)?.[1] ?? 0) + Number(/^cmdstat_eval:calls=(\d+)/m.exec(stats)?.[1] ?? 0)
}

/**
 * Measured on a Redis of its own: in the shared one, a hash-table resize caused by the benchmark's
 * own sessions would land inside the measurement window.
 */
async function memoryPerSession (): Promise<{ bytes: number, sampleKeyBytes: number }> {
  const fresh = await startTestRedis()
  const redis = fresh.client()
  const redisUrl = fresh.url
  try {
    return await measureMemory(redisUrl, redis)
  } finally {
    await fresh.close()
  }
}

async function measureMemory (redisUrl: string, redis: Redis): Promise<{ bytes: number, sampleKeyBytes: number }> {
  const config = validateConfig({ redis: { url: redisUrl, keyPrefix: 'mcpgw:' }, routes: [{ path: '/mcp', upstream: 'http://u/mcp' }] }).redis as RedisConfig
  const store = new RedisSessionStore({ idleTimeout: 30 * 60_000, maxLifetime: 24 * 3_600_000, redis: config })
  await store.ready()
  // A realistic client: what the official SDK clients send in initialize.
  const data = { route: '/mcp', protocolVersion: '2025-11-25', clientInfo: { name: 'claude-code', version: '2.1.4' }, clientCapabilities: { roots: { listChanged: true }, sampling: {}, elicitation: {} } }
  await redis.call('MEMORY', 'PURGE').catch(() => undefined)
  const before = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
  let sample = ''
  for (let index = 0; index < MEMORY_SESSIONS; index += 500) {
    await Promise.all(Array.from({ length: 500 }, async () => {
      const id = mintSessionId()
      sample = id
      await store.create(id, data)
    }))
  }
  const after = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
  const sampleKeyBytes = Number(await redis.call('MEMORY', 'USAGE', `mcpgw:session:${sample}`))
  await store.close()
  return { bytes: Math.round((after - before) / MEMORY_SESSIONS), sampleKeyBytes }
}

function format (result: RunResult): string {
  return `${String(result.requestsPerSecond).padStart(9)}  ${result.p50.toFixed(2).padStart(7)}  ${result.p99.toFixed(2).padStart(7)}  ${String(result.errors).padStart(6)}`
}

async function main (): Promise<void> {
  const redis = await startTestRedis()
  const redisClient = redis.client()
  const upstream = await startServer('upstream')
  const upstreamUrl = `http://127.0.0.1:${upstream.port}/mcp`
  const bare = await startServer('bare', upstreamUrl)
  const gateway = await startServer('gateway', upstreamUrl, redis.url)
  const children = [upstream.child, bare.child, gateway.child]
  try {
    const opened = await fetch(`http://127.0.0.1:${gateway.port}/mcp`, { method: 'POST', headers: mcpHeaders, body: initialize })
    const sessionId = opened.headers.get('mcp-session-id') as string
    const scenarios: Scenario[] = [
      { name: 'direct: upstream, tools/list', url: () => upstreamUrl, body: toolsList },
      { name: 'bare proxy, tools/list', url: () => `http://127.0.0.1:${bare.port}/mcp`, body: toolsList },
      { name: 'gateway, live session, tools/list', url: () => `http://127.0.0.1:${gateway.port}/mcp`, body: toolsList, headers: () => ({ 'mcp-session-id': sessionId }) },
      { name: 'bare proxy, initialize', url: () => `http://127.0.0.1:${bare.port}/mcp`, body: initialize },
      { name: 'gateway, initialize (mints)', url: () => `http://127.0.0.1:${gateway.port}/mcp`, body: initialize }
    ]
    process.stdout.write(`mcp-session-gateway benchmark: ${ROUNDS} alternating rounds of ${DURATION_S}s per scenario, ${CONNECTIONS} connections (latency at equal load: ${LATENCY_CONNECTIONS}), ${cpus().length} cores, Node ${process.version}\n`)

    const throughput = new Map<string, RunResult[]>(scenarios.map((scenario) => [scenario.name, []]))
    let gatewayRequests = 0
    let gatewayCommands = 0
    let redisScripts = 0
    const metricsUrl = `http://127.0.0.1:${gateway.port}/metrics`
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? scenarios : [...scenarios].reverse()
      for (const scenario of order) {
        const roundTripsBefore = await gatewayRoundTrips(metricsUrl)
        const scriptsBefore = await redisScriptCalls(redisClient)
        const result = await run(scenario)
        throughput.get(scenario.name)?.push(result)
        if (scenario.name.startsWith('gateway, live session')) {
          gatewayCommands += await gatewayRoundTrips(metricsUrl) - roundTripsBefore
          redisScripts += await redisScriptCalls(redisClient) - scriptsBefore
          gatewayRequests += result.requests
        }
        process.stdout.write(`  round ${round + 1}: ${scenario.name.padEnd(34)} ${format(result)}\n`)
      }
    }

    // Latency at the same load: both proxies driven at one fixed rate, below either one's maximum.
    const bareMax = summarize(throughput.get('bare proxy, tools/list') ?? []).requestsPerSecond
    const gatewayMax = summarize(throughput.get('gateway, live session, tools/list') ?? []).requestsPerSecond
    const fixedRate = Math.round(Math.min(bareMax, gatewayMax) * LATENCY_LOAD_SHARE)
    const atRate = new Map<string, RunResult[]>([['bare proxy, tools/list', []], ['gateway, live session, tools/list', []]])
    for (let round = 0; round < ROUNDS; round++) {
      for (const scenario of round % 2 === 0 ? [scenarios[1], scenarios[2]] : [scenarios[2], scenarios[1]]) {
        const result = await run(scenario as Scenario, fixedRate)
        atRate.get((scenario as Scenario).name)?.push(result)
        process.stdout.write(`  round ${round + 1} at ${fixedRate} req/s: ${(scenario as Scenario).name.padEnd(22)} ${format(result)}\n`)
      }
    }

    const memory = await memoryPerSession()
    const summary = Object.fromEntries([...throughput].map(([name, runs]) => [name, summarize(runs)]))
    const latency = Object.fromEntries([...atRate].map(([name, runs]) => [name, summarize(runs)]))
    const bareRate = summary['bare proxy, tools/list'] as RunResult
    const gatewayRate = summary['gateway, live session, tools/list'] as RunResult
    const bareInit = summary['bare proxy, initialize'] as RunResult
    const gatewayInit = summary['gateway, initialize (mints)'] as RunResult
    const bareAtRate = latency['bare proxy, tools/list'] as RunResult
    const gatewayAtRate = latency['gateway, live session, tools/list'] as RunResult
    const roundTrips = gatewayCommands / gatewayRequests
    const targets = [
      { target: 'gateway req/s ≥ 0.9 × bare proxy', value: gatewayRate.requestsPerSecond / bareRate.requestsPerSecond, pass: gatewayRate.requestsPerSecond / bareRate.requestsPerSecond >= 0.9 },
      { target: `gateway p99 ≤ bare p99 + 1 ms at ${fixedRate} req/s`, value: gatewayAtRate.p99 - bareAtRate.p99, pass: gatewayAtRate.p99 - bareAtRate.p99 <= 1 },
      { target: 'initialize rate ≥ 0.5 × bare initialize', value: gatewayInit.requestsPerSecond / bareInit.requestsPerSecond, pass: gatewayInit.requestsPerSecond / bareInit.requestsPerSecond >= 0.5 },
      { target: 'Redis bytes per session ≤ 512', value: memory.bytes, pass: memory.bytes <= 512 },
      { target: 'Redis round trips per proxied request = 1', value: roundTrips, pass: Math.abs(roundTrips - 1) < 0.01 }
    ]

    process.stdout.write(`\n${'scenario (median of rounds)'.padEnd(36)}    req/s   p50 ms   p99 ms  errors\n`)
    for (const [name, result] of Object.entries(summary)) process.stdout.write(`${name.padEnd(36)} ${format(result)}\n`)
    process.stdout.write(`\nat a fixed ${fixedRate} req/s:\n`)
    for (const [name, result] of Object.entries(latency)) process.stdout.write(`${name.padEnd(36)} ${format(result)}\n`)
    process.stdout.write(`\nRedis: ${memory.bytes} bytes per session (used_memory delta over ${MEMORY_SESSIONS} sessions; MEMORY USAGE of one key: ${memory.sampleKeyBytes}); ${roundTrips.toFixed(3)} round trips per proxied request (gateway side), ${(redisScripts / gatewayRequests).toFixed(3)} script calls per request (Redis side)\n\n`)
    for (const target of targets) process.stdout.write(`${target.pass ? 'PASS' : 'MISS'}  ${target.target}: ${target.value.toFixed(3)}\n`)

    const report = { date: new Date().toISOString(), node: process.version, cores: cpus().length, rounds: ROUNDS, durationSeconds: DURATION_S, connections: CONNECTIONS, fixedRate, throughput: summary, latencyAtFixedRate: latency, redis: { bytesPerSession: memory.bytes, sampleKeyBytes: memory.sampleKeyBytes, commandsPerProxiedRequest: roundTrips }, targets }
    await mkdir(resultsDir, { recursive: true })
    await writeFile(join(resultsDir, 'latest.json'), JSON.stringify(report, null, 2) + '\n')
    await writeFile(join(resultsDir, 'latest.svg'), renderChart(report))
    process.stdout.write(`\nwrote bench/results/latest.json and bench/results/latest.svg\n`)
  } finally {
    // SIGINT, not SIGKILL: a profiled process writes its profile on the way out.
    await Promise.all(children.map(async (child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGINT')
      await exited
    }))
    await redis.close()
  }
}

await main()
