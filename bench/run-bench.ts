import autocannon from 'autocannon'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Redis } from 'ioredis'
import { startTestRedis } from '../test/helpers/redis-server.js'
import { comparedGatewayCores, coreLayout, cpuPerRequest, cpuSnapshot, onCores, pinProcess, type BenchRole } from './process-cpu.js'
import { renderChart } from './render-chart.js'
import { initialize, mcpHeaders, toolsList } from './mcp-requests.js'
import { gatewayCounts, redisScriptCalls, usedMemory } from './redis-counts.js'
import { format, LATENCY_LOAD_SHARE, printResults, summarize, type ProxyName, type RoundLoad, type RunResult, type Scenario } from './rounds.js'
import { printSseParseResults, sseParseBench } from './sse-parse-bench.js'
import { streamsBench } from './stream-bench.js'
import { statefulBench, type StatefulRole } from './stateful-bench.js'

/*
 * `npm run bench` (docs/performance.md): what the gateway costs. Real Redis, a minimal upstream, a bare
 * @fastify/http-proxy and the gateway, each in its own process; autocannon from this one. Scenarios
 * run in alternating rounds (A/B/A/B...) so that machine noise hits all of them alike; each figure is
 * the median of its rounds. Never part of `npm test`: numbers are reported, not asserted.
 *
 * The headline figure is CPU time per request of each proxy process (its /proc utime + stime over a
 * round, divided by the requests it served): unlike requests per second it does not depend on what
 * else runs on the machine. Then latency at one fixed rate with BASELINE_SESSIONS live sessions and
 * again after BENCH_SESSIONS were created through the gateway, and what those sessions cost in Redis.
 *
 * BENCH_STREAMS=1 adds the resumable-streams comparison (stream-bench.ts) after all that;
 * BENCH_STREAMS=only runs that comparison alone. BENCH_STATEFUL=1 adds the stateful-upstreams
 * comparison (stateful-bench.ts) last; BENCH_STATEFUL=only runs it alone. The SSE parser's row
 * (sse-parse-bench.ts) comes first, before any other process starts, unless BENCH_SSE_PARSE=0 or
 * another section runs alone; BENCH_SSE_PARSE=only runs it alone.
 */

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const DURATION_S = Number(process.env.BENCH_DURATION ?? 4)
/** Each capacity scenario runs this long, unrecorded, before its rounds: round 1 is not the JIT's. */
const WARMUP_S = 2
const MIN_ROUND_REQUESTS = 1_000
const ROUND_TRIP_REQUESTS = 10_000
// Enough concurrency that throughput measures capacity, not connections ÷ latency.
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 128)
/** Live sessions in Redis for the second latency measurement, all created by real initialize requests. */
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000)
/** Live sessions for the first one: the comparison is "10⁶ sessions against 10³". */
const BASELINE_SESSIONS = Math.min(1_000, SESSIONS)
/** initialize requests in flight at once while sessions are created. */
const CREATE_CONNECTIONS = Number(process.env.BENCH_CREATE_CONNECTIONS ?? 64)
/** Sessions are created in batches so that a long run shows progress. */
const CREATE_BATCH = 50_000
const SAMPLED_KEYS = 5
/** Latency at equal load is measured below capacity, with fewer connections, so it is not queueing. */
const LATENCY_CONNECTIONS = 32
/** 0: not the resumable-streams comparison; 1: it too, last; only: it alone. */
const STREAMS = process.env.BENCH_STREAMS ?? '0'
/** 0: not the stateful-upstreams comparison; 1: it too, last; only: it alone. */
const STATEFUL = process.env.BENCH_STATEFUL ?? '0'
/** 1: the SSE parser's row first (unless another section runs alone); 0: not; only: it alone. */
const SSE_PARSE = process.env.BENCH_SSE_PARSE ?? '1'
const root = fileURLToPath(new URL('../..', import.meta.url))
const serversScript = join(root, 'dist/bench/bench-servers.js')
const resultsDir = join(root, 'bench/results')

const layout = coreLayout(availableParallelism())

function coresOf (role: BenchRole): string | undefined {
  return layout.cores?.[role]
}

/** The gateways of the resumable-streams comparison share cores, even on a machine too small to pin the rest. */
function coresOfServer (role: 'upstream' | 'upstream-stateful' | ProxyName): string | undefined {
  if (role === 'upstream' || role === 'bare' || role === 'gateway') return coresOf(role)
  // The stateful comparison takes the roles of the main one: same cores, same conditions.
  if (role === 'upstream-stateful') return coresOf('upstream')
  if (role === 'bare-stateful') return coresOf('bare')
  if (role === 'gateway-stateful') return coresOf('gateway')
  return comparedGatewayCores(layout, availableParallelism())
}

async function startServer (role: 'upstream' | 'upstream-stateful' | ProxyName, ...args: string[]): Promise<{ port: number, child: ChildProcess, pid: number }> {
  // BENCH_PROFILE=1: CPU profiles of the proxies into bench/profiles (open them in Chrome DevTools).
  const profile = process.env.BENCH_PROFILE === '1' && !role.startsWith('upstream') ? ['--cpu-prof', `--cpu-prof-dir=${join(root, 'bench/profiles')}`] : []
  // taskset execs the command: the child's pid is the Node process's own.
  const [command, commandArgs] = onCores(coresOfServer(role), process.execPath, [...profile, serversScript, role, ...args])
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const match = /listening (\d+)/.exec(chunk.toString())
      if (match !== null) resolve(Number(match[1]))
    })
    child.once('exit', (code) => reject(new Error(`${role} exited with ${String(code)}`)))
  })
  if (profile.length > 0) process.stdout.write(`profiling ${role}: pid ${String(child.pid)}\n`)
  return { port, child, pid: child.pid as number }
}

async function redisPid (redis: Redis): Promise<number> {
  return Number(/^process_id:(\d+)/m.exec(await redis.info('server'))?.[1])
}

async function main (): Promise<void> {
  const started = Date.now()
  if (!['0', '1', 'only'].includes(STREAMS)) throw new Error(`BENCH_STREAMS must be 0, 1 or only, not ${STREAMS}`)
  if (!['0', '1', 'only'].includes(STATEFUL)) throw new Error(`BENCH_STATEFUL must be 0, 1 or only, not ${STATEFUL}`)
  if (!['0', '1', 'only'].includes(SSE_PARSE)) throw new Error(`BENCH_SSE_PARSE must be 0, 1 or only, not ${SSE_PARSE}`)
  if (SSE_PARSE === 'only' || (SSE_PARSE === '1' && STREAMS !== 'only' && STATEFUL !== 'only')) {
    // In this process, before the others start: the parser is measured alone on the machine's cores.
    const results = sseParseBench()
    printSseParseResults(results)
    await mkdir(resultsDir, { recursive: true })
    await writeFile(join(resultsDir, 'sse-parse.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, results }, null, 2) + '\n')
    process.stdout.write('wrote bench/results/sse-parse.json\n\n')
    if (SSE_PARSE === 'only') return
  }
  const loadGeneratorCores = coresOf('load generator')
  if (loadGeneratorCores !== undefined) pinProcess(process.pid, loadGeneratorCores)
  const redis = await startTestRedis()
  const redisClient = redis.client()
  const redisCores = coresOf('redis')
  const redisProcess = await redisPid(redisClient)
  if (redisCores !== undefined) pinProcess(redisProcess, redisCores)
  const upstream = await startServer('upstream')
  const upstreamUrl = `http://127.0.0.1:${upstream.port}/mcp`
  const children = [upstream.child]
  /** Every process whose CPU time a round reads: the proxies join as they are started. */
  const pids: Record<string, number> = { upstream: upstream.pid, redis: redisProcess }

  async function startProxy (role: ProxyName): Promise<{ port: number, pid: number }> {
    const proxy = await (role === 'bare' ? startServer(role, upstreamUrl) : startServer(role, upstreamUrl, redis.url))
    children.push(proxy.child)
    pids[role] = proxy.pid
    return { port: proxy.port, pid: proxy.pid }
  }

  /**
   * One round. At capacity it is a fixed number of requests (`amount`), all of them answered before it
   * ends, so that CPU time and Redis round trips are divided by exactly the requests that caused them;
   * a round of fixed duration would end with its in-flight requests aborted, work done and not counted.
   * At a fixed rate it is a fixed duration: few requests are in flight at its end.
   */
  async function run (scenario: Scenario, load: RoundLoad): Promise<RunResult> {
    const before = cpuSnapshot(pids)
    const fixedRate = 'overallRate' in load && load.overallRate !== undefined
    const result = await autocannon({
      url: scenario.url(),
      method: 'POST',
      headers: { ...mcpHeaders, ...scenario.headers?.() },
      body: scenario.body,
      connections: fixedRate ? LATENCY_CONNECTIONS : CONNECTIONS,
      ...load
    })
    const cpu = cpuPerRequest(before, cpuSnapshot(pids), result.requests.total)
    return {
      requestsPerSecond: 'amount' in load ? Math.round(result.requests.total / result.duration) : result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      errors: result.errors + result.timeouts + result.non2xx,
      requests: result.requests.total,
      cpu: { ...(scenario.proxy === undefined ? {} : { proxy: cpu[scenario.proxy] as number }), upstream: cpu[scenario.upstream ?? 'upstream'] as number, redis: cpu.redis as number }
    }
  }

  /**
   * Each scenario's rounds, in alternating order (A/B/C, then C/B/A...). At capacity a warm-up of
   * each scenario comes first and sizes its rounds.
   */
  async function roundRuns (scenarios: Scenario[], label: string, overallRate?: number): Promise<Map<string, RunResult[]>> {
    const runs = new Map<string, RunResult[]>(scenarios.map((scenario) => [scenario.name, []]))
    const loads = new Map<string, RoundLoad>()
    for (const scenario of scenarios) {
      if (overallRate !== undefined) {
        loads.set(scenario.name, { duration: DURATION_S, overallRate })
      } else {
        // The warm-up also sizes the rounds: about BENCH_DURATION seconds each at the rate it reached.
        const warmUp = await run(scenario, { duration: WARMUP_S })
        loads.set(scenario.name, { amount: Math.max(MIN_ROUND_REQUESTS, Math.round(warmUp.requestsPerSecond * DURATION_S)) })
      }
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const scenario of round % 2 === 0 ? scenarios : [...scenarios].reverse()) {
        const result = await run(scenario, loads.get(scenario.name) as RoundLoad)
        runs.get(scenario.name)?.push(result)
        process.stdout.write(`  round ${round + 1}${label}: ${scenario.name.padEnd(34)} ${format(result)}\n`)
      }
    }
    return runs
  }

  async function roundsOf (scenarios: Scenario[], label: string, overallRate?: number): Promise<Record<string, RunResult>> {
    const runs = await roundRuns(scenarios, label, overallRate)
    return Object.fromEntries([...runs].map(([name, results]) => [name, summarize(results)]))
  }

  /** Live sessions created through the gateway: real initialize requests, CREATE_CONNECTIONS at a time. */
  async function createSessions (gatewayUrl: string, count: number): Promise<{ seconds: number, errors: number }> {
    const start = Date.now()
    let errors = 0
    for (let done = 0; done < count; done += CREATE_BATCH) {
      const amount = Math.min(CREATE_BATCH, count - done)
      const result = await autocannon({ url: gatewayUrl, method: 'POST', headers: mcpHeaders, body: initialize, connections: Math.min(CREATE_CONNECTIONS, amount), amount })
      errors += result.errors + result.timeouts + result.non2xx
      if (count > CREATE_BATCH) process.stdout.write(`  created ${(done + amount).toLocaleString('en-US')} of ${count.toLocaleString('en-US')} sessions (${((Date.now() - start) / 1000).toFixed(0)} s)\n`)
    }
    return { seconds: (Date.now() - start) / 1000, errors }
  }

  /** Sections 1 to 3: the gateway against a bare proxy, and what sessions cost. */
  async function sessionsBench (): Promise<void> {
    const bareUrl = `http://127.0.0.1:${(await startProxy('bare')).port}/mcp`
    const gatewayPort = (await startProxy('gateway')).port
    const gatewayUrl = `http://127.0.0.1:${gatewayPort}/mcp`
    const opened = await fetch(gatewayUrl, { method: 'POST', headers: mcpHeaders, body: initialize })
    const sessionId = opened.headers.get('mcp-session-id') as string
    const direct: Scenario = { name: 'direct: upstream, tools/list', url: () => upstreamUrl, body: toolsList }
    const bareList: Scenario = { name: 'bare proxy, tools/list', proxy: 'bare', url: () => bareUrl, body: toolsList }
    const gatewayList: Scenario = { name: 'gateway, live session, tools/list', proxy: 'gateway', url: () => gatewayUrl, body: toolsList, headers: () => ({ 'mcp-session-id': sessionId }) }
    const bareInitialize: Scenario = { name: 'bare proxy, initialize', proxy: 'bare', url: () => bareUrl, body: initialize }
    const gatewayInitialize: Scenario = { name: 'gateway, initialize (mints)', proxy: 'gateway', url: () => gatewayUrl, body: initialize }
    process.stdout.write(`mcp-session-gateway benchmark: ${ROUNDS} alternating rounds of ${DURATION_S}s per scenario, ${CONNECTIONS} connections (at a fixed rate: ${LATENCY_CONNECTIONS}), ${BASELINE_SESSIONS.toLocaleString('en-US')} then ${SESSIONS.toLocaleString('en-US')} live sessions, Node ${process.version}\n${layout.description}\n\n`)

    // 1. Capacity and CPU per request of a request on a live session.
    const metricsUrl = `http://127.0.0.1:${gatewayPort}/metrics`
    const throughput = await roundsOf([direct, bareList, gatewayList], '')
    // Redis round trips: a fixed number of requests on the live session, every one answered.
    const countsBefore = await gatewayCounts(metricsUrl, 'tools/list')
    const scriptsBefore = await redisScriptCalls(redisClient)
    await run(gatewayList, { amount: ROUND_TRIP_REQUESTS })
    const countsAfter = await gatewayCounts(metricsUrl, 'tools/list')
    const redisTrips = {
      roundTripsPerProxiedRequest: (countsAfter.touch - countsBefore.touch) / ROUND_TRIP_REQUESTS,
      storeCallsPerProxiedRequest: (countsAfter.storeCalls - countsBefore.storeCalls) / ROUND_TRIP_REQUESTS,
      scriptCallsPerProxiedRequest: (await redisScriptCalls(redisClient) - scriptsBefore) / ROUND_TRIP_REQUESTS,
      answeredPerRequest: (countsAfter.answered - countsBefore.answered) / ROUND_TRIP_REQUESTS
    }

    // 2. Latency at one fixed rate, below either proxy's capacity, with BASELINE_SESSIONS live sessions...
    const fixedRate = Math.round(Math.min((throughput[bareList.name] as RunResult).requestsPerSecond, (throughput[gatewayList.name] as RunResult).requestsPerSecond) * LATENCY_LOAD_SHARE)
    const memoryBefore = await usedMemory(redisClient)
    const keysBefore = await redisClient.dbsize()
    await createSessions(gatewayUrl, Math.max(0, BASELINE_SESSIONS - keysBefore))
    const atBaseline = await roundsOf([bareList, gatewayList], ` at ${fixedRate} req/s, ${BASELINE_SESSIONS} sessions`, fixedRate)

    // ...and again, at the same rate, once SESSIONS are live.
    const toCreate = Math.max(0, SESSIONS - await redisClient.dbsize())
    const created = await createSessions(gatewayUrl, toCreate)
    const liveSessions = await redisClient.dbsize()
    const memoryAfter = await usedMemory(redisClient)
    process.stdout.write(`  ${liveSessions.toLocaleString('en-US')} live sessions: ${toCreate.toLocaleString('en-US')} created through the gateway in ${created.seconds.toFixed(1)} s (${CREATE_CONNECTIONS} at a time), ${created.errors} errors\n`)
    const atSessions = SESSIONS > BASELINE_SESSIONS ? await roundsOf([bareList, gatewayList], ` at ${fixedRate} req/s, ${SESSIONS} sessions`, fixedRate) : undefined
    const sampleKeys: string[] = []
    for (let attempt = 0; attempt < SAMPLED_KEYS * 4 && sampleKeys.length < SAMPLED_KEYS; attempt++) {
      const key = await redisClient.randomkey()
      if (key !== null && key.startsWith('bench:session:') && !sampleKeys.includes(key)) sampleKeys.push(key)
    }
    const sampleKeyBytes = await Promise.all(sampleKeys.map(async (key) => Number(await redisClient.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))))
    const bytesPerSession = Math.round((memoryAfter - memoryBefore) / (liveSessions - keysBefore))

    // 3. Session creation, last: every initialize leaves one more live session behind.
    const initializeRate = await roundsOf([bareInitialize, gatewayInitialize], '')

    const bareRate = throughput[bareList.name] as RunResult
    const gatewayRate = throughput[gatewayList.name] as RunResult
    const bareInit = initializeRate[bareInitialize.name] as RunResult
    const gatewayInit = initializeRate[gatewayInitialize.name] as RunResult
    const ratio = (gatewayValue: number | undefined, bareValue: number | undefined): number => (gatewayValue ?? 0) / (bareValue ?? 1)
    const ratios = {
      cpuPerRequest: ratio(gatewayRate.cpu.proxy, bareRate.cpu.proxy),
      requestsPerSecond: ratio(gatewayRate.requestsPerSecond, bareRate.requestsPerSecond),
      initializeCpuPerRequest: ratio(gatewayInit.cpu.proxy, bareInit.cpu.proxy),
      initializeRequestsPerSecond: ratio(gatewayInit.requestsPerSecond, bareInit.requestsPerSecond)
    }
    const gatewayBefore = atBaseline[gatewayList.name] as RunResult
    const gatewayAfter = atSessions?.[gatewayList.name]
    const p99Growth = gatewayAfter === undefined ? undefined : gatewayAfter.p99 / gatewayBefore.p99
    const bareP99Growth = atSessions === undefined ? undefined : (atSessions[bareList.name] as RunResult).p99 / (atBaseline[bareList.name] as RunResult).p99
    const targets = [
      { target: 'gateway CPU per request ≤ 1.1 × bare proxy', value: ratios.cpuPerRequest, pass: ratios.cpuPerRequest <= 1.1 },
      ...(p99Growth === undefined ? [] : [{ target: `gateway p99 with ${SESSIONS} sessions ≤ 1.1 × with ${BASELINE_SESSIONS}, at ${fixedRate} req/s`, value: p99Growth, pass: p99Growth <= 1.1 }]),
      { target: 'Redis bytes per session ≤ 512', value: bytesPerSession, pass: bytesPerSession <= 512 },
      { target: 'Redis round trips per proxied request = 1', value: redisTrips.roundTripsPerProxiedRequest, pass: Math.abs(redisTrips.roundTripsPerProxiedRequest - 1) < 0.01 }
    ]

    printResults('scenario (median of rounds)', throughput)
    process.stdout.write(`gateway / bare proxy: CPU per request ${ratios.cpuPerRequest.toFixed(2)}×, req/s ${ratios.requestsPerSecond.toFixed(2)}×\n`)
    printResults(`at ${fixedRate} req/s, ${BASELINE_SESSIONS} live sessions`, atBaseline)
    if (atSessions === undefined) process.stdout.write(`(BENCH_SESSIONS ≤ ${BASELINE_SESSIONS}: no second measurement)\n`)
    else printResults(`at ${fixedRate} req/s, ${SESSIONS} live sessions`, atSessions)
    if (p99Growth !== undefined) process.stdout.write(`p99 with ${SESSIONS} / with ${BASELINE_SESSIONS} sessions: gateway ${p99Growth.toFixed(2)}×, bare proxy ${(bareP99Growth as number).toFixed(2)}× (the bare proxy never reads Redis: its change is the machine's noise)\n`)
    printResults('session creation', initializeRate)
    process.stdout.write(`gateway / bare proxy, initialize: CPU per request ${ratios.initializeCpuPerRequest.toFixed(2)}×, req/s ${ratios.initializeRequestsPerSecond.toFixed(2)}×\n`)
    process.stdout.write(`\nRedis: ${bytesPerSession} bytes per session (used_memory delta over ${(liveSessions - keysBefore).toLocaleString('en-US')} sessions created through the gateway; MEMORY USAGE of ${sampleKeys.length} sampled keys: ${sampleKeyBytes.join(', ')}); ${redisTrips.roundTripsPerProxiedRequest.toFixed(3)} round trips per proxied request (touch), ${redisTrips.storeCallsPerProxiedRequest.toFixed(3)} store calls of any kind, ${redisTrips.scriptCallsPerProxiedRequest.toFixed(3)} script calls per request (Redis side), over ${ROUND_TRIP_REQUESTS.toLocaleString('en-US')} requests (${(redisTrips.answeredPerRequest * ROUND_TRIP_REQUESTS).toLocaleString('en-US')} answered as counted by the gateway)\n\n`)
    for (const target of targets) process.stdout.write(`${target.pass ? 'PASS' : 'MISS'}  ${target.target}: ${target.value.toFixed(3)}\n`)
    if (layout.cores === undefined) process.stdout.write('\nNot pinned: requests/s and latency depend on everything else running on these cores. CPU time per request counts only each process\'s own time: far less sensitive to that, though not immune (a starved process serves fewer requests per event-loop turn, with colder caches).\n')

    const report = {
      date: new Date().toISOString(),
      node: process.version,
      cores: availableParallelism(),
      pinning: layout.description,
      rounds: ROUNDS,
      durationSeconds: DURATION_S,
      connections: CONNECTIONS,
      fixedRate,
      throughput,
      ratios,
      initialize: initializeRate,
      sessions: {
        baseline: BASELINE_SESSIONS,
        live: liveSessions,
        createSeconds: created.seconds,
        createErrors: created.errors,
        latencyAtBaseline: atBaseline,
        ...(atSessions === undefined ? {} : { latencyAtSessions: atSessions })
      },
      redis: { bytesPerSession, sampleKeyBytes, ...redisTrips },
      targets,
      runSeconds: Math.round((Date.now() - started) / 1000)
    }
    await mkdir(resultsDir, { recursive: true })
    await writeFile(join(resultsDir, 'latest.json'), JSON.stringify(report, null, 2) + '\n')
    await writeFile(join(resultsDir, 'latest.svg'), renderChart(report))
    process.stdout.write(`\nwrote bench/results/latest.json and bench/results/latest.svg (${report.runSeconds} s)\n`)
  }

  /** A process of the stateful comparison, its CPU time read under its role's name. */
  async function startStateful (role: StatefulRole, target?: string): Promise<{ port: number }> {
    const server = await startServer(role, ...(target === undefined ? [] : [target, redis.url]))
    children.push(server.child)
    pids[role] = server.pid
    return { port: server.port }
  }

  try {
    if (STREAMS !== 'only' && STATEFUL !== 'only') await sessionsBench()
    if ((STREAMS === '1' || STREAMS === 'only') && STATEFUL !== 'only') {
      const report = await streamsBench({
        upstreamUrl,
        redis: redisClient,
        pinning: layout.description,
        gatewayCores: comparedGatewayCores(layout, availableParallelism()),
        startGateway: startProxy,
        run,
        roundRuns
      })
      await mkdir(resultsDir, { recursive: true })
      await writeFile(join(resultsDir, 'streams.json'), JSON.stringify({ ...report, runSeconds: Math.round((Date.now() - started) / 1000) }, null, 2) + '\n')
      process.stdout.write(`\nwrote bench/results/streams.json (${Math.round((Date.now() - started) / 1000)} s since the start)\n`)
    }
    if (STATEFUL === '1' || STATEFUL === 'only') {
      const report = await statefulBench({ pinning: layout.description, start: startStateful, run, roundRuns })
      await mkdir(resultsDir, { recursive: true })
      await writeFile(join(resultsDir, 'stateful.json'), JSON.stringify({ ...report, runSeconds: Math.round((Date.now() - started) / 1000) }, null, 2) + '\n')
      process.stdout.write(`\nwrote bench/results/stateful.json (${Math.round((Date.now() - started) / 1000)} s since the start)\n`)
    }
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
