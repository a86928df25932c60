import autocannon from 'autocannon'
import type { Redis } from 'ioredis'
import { initialize, jsonToolCall, mcpHeaders, streamedToolCall } from './mcp-requests.js'
import { ioSyscalls } from './process-cpu.js'
import { commandsPerRequest, gatewayCounts, redisCommandCalls, usedMemory } from './redis-counts.js'
import { LATENCY_LOAD_SHARE, median, printResults, summarize, type RoundLoad, type RunResult, type Scenario } from './rounds.js'

/*
 * The resumable-streams comparison of `npm run bench` (BENCH_STREAMS=1 or only; docs/performance.md,
 * "Resumable streams"): what keeping every relayed SSE event in Redis costs. Three gateways in
 * front of the same upstream and Redis, differing only in `streams`:
 *   recording     resumable: true (the default): each event gets an id and is appended to a Redis
 *                 Stream, one script call per event, not awaited
 *   relaying      resumable: false with the default keep-alive: the SSE answer is still parsed and
 *                 written again event by event, nothing is kept; recording's cost minus this one's
 *                 is what storing the events costs
 *   pass-through  resumable: false, keepAlive: 0: the upstream's SSE bytes pass through untouched
 * each with a session of its own, for a tool call answered with SSE (BENCH_STREAM_EVENTS progress
 * notifications of about 200 bytes, then the result) and for one answered with JSON, which
 * recording must leave as it was: same Redis commands, same CPU within the noise.
 */

const NOTIFICATIONS = Number(process.env.BENCH_STREAM_EVENTS ?? 5)
/** Requests counted for Redis commands per request, every one answered. */
const COUNTED_REQUESTS = 2_000
/** Streamed calls whose kept streams are weighed in Redis. */
const WEIGHED_CALLS = 1_000
/** One long stream, weighed alone: what one more event costs once the stream's own overhead is shared. */
const LONG_STREAM_NOTIFICATIONS = 500
/** Appends are not awaited by the gateway: Redis's counts settle after the last answer. */
const SETTLE_TIMEOUT_MS = 10_000
const SETTLE_INTERVAL_MS = 100
/** Streamed calls in flight while the weighed streams are written. */
const WEIGHING_CONNECTIONS = 32
const CPU_TARGET = 1.1
const PRE_WARM_REQUESTS = 2_000

export type StreamGatewayRole = 'gateway-recording' | 'gateway-relaying' | 'gateway-pass-through'

/** What the comparison needs of run-bench.ts: its processes, and its rounds with CPU time per request. */
export interface StreamsBenchHarness {
  readonly upstreamUrl: string
  readonly redis: Redis
  readonly pinning: string
  /** The cores the compared gateways share (taskset -c), if pinned. */
  readonly gatewayCores: string | undefined
  /** Starts a gateway process (its CPU time is read from then on). */
  startGateway (role: StreamGatewayRole): Promise<{ port: number, pid: number }>
  run (scenario: Scenario, load: RoundLoad): Promise<RunResult>
  roundRuns (scenarios: Scenario[], label: string, overallRate?: number): Promise<Map<string, RunResult[]>>
}

interface SseEventSummary { readonly data: string, readonly id: string | undefined }

/** The events of an SSE body, enough for what the bench upstream and the gateway write. */
function sseEvents (text: string): SseEventSummary[] {
  const events: SseEventSummary[] = []
  for (const block of text.split(/\r?\n\r?\n/)) {
    const lines = block.split(/\r?\n/)
    const id = lines.find((line) => line.startsWith('id:'))?.slice(3).trimStart()
    const data = lines.filter((line) => line.startsWith('data:'))
    // A block of comments (`: keepalive`) or a lone `retry:` dispatches no event.
    if (id === undefined && data.length === 0) continue
    events.push({ data: data.map((line) => line.slice(5).trimStart()).join('\n'), id })
  }
  return events
}

async function post (url: string, body: string, sessionId?: string): Promise<Response> {
  const response = await fetch(url, { method: 'POST', headers: { ...mcpHeaders, ...(sessionId === undefined ? {} : { 'mcp-session-id': sessionId }) }, body })
  if (response.status !== 200) throw new Error(`POST ${url} answered ${response.status}: ${await response.text()}`)
  return response
}

async function openSession (url: string): Promise<string> {
  const response = await post(url, initialize)
  await response.arrayBuffer()
  const sessionId = response.headers.get('mcp-session-id')
  if (sessionId === null) throw new Error(`${url} minted no session`)
  return sessionId
}

/** Waits until Redis has served no command for one interval (the appends the gateway did not await). */
async function settled (redis: Redis): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS
  let last = JSON.stringify(await redisCommandCalls(redis))
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_INTERVAL_MS))
    const now = JSON.stringify(await redisCommandCalls(redis))
    if (now === last) return
    last = now
  }
  throw new Error(`Redis still serving commands after ${SETTLE_TIMEOUT_MS} ms`)
}

/** The gateway's Redis keys of a session's streams (src/sessions/redis-keys.ts: unbound sessions). */
function streamKeys (sessionId: string): { index: string, stream: (name: string) => string } {
  const tag = `bench:session:${sessionId}`
  return { index: `bench:streams:{${tag}}:${sessionId}`, stream: (name) => `bench:stream:{${tag}}:${sessionId}:${name}` }
}

interface StreamsWeight { streams: number, entries: number, streamBytes: number, indexBytes: number }

/** MEMORY USAGE (every sample) and XLEN of every kept stream of a session, and of its index. */
async function weighStreams (redis: Redis, sessionId: string): Promise<StreamsWeight> {
  const keys = streamKeys(sessionId)
  const names = await redis.zrange(keys.index, '0', '-1')
  const pipeline = redis.pipeline()
  for (const name of names) {
    pipeline.call('MEMORY', 'USAGE', keys.stream(name), 'SAMPLES', '0')
    pipeline.xlen(keys.stream(name))
  }
  const answers = (await pipeline.exec() ?? []).map(([error, value]) => {
    if (error !== null) throw error
    return Number(value)
  })
  let streamBytes = 0
  let entries = 0
  for (let index = 0; index < answers.length; index += 2) {
    streamBytes += answers[index] as number
    entries += answers[index + 1] as number
  }
  return { streams: names.length, entries, streamBytes, indexBytes: Number(await redis.call('MEMORY', 'USAGE', keys.index, 'SAMPLES', '0')) }
}

function average (values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length)
}

/** Per round, the first scenario's CPU per request over the second's (rounds alternate, so pairs share the machine's mood). */
function roundRatios (runs: Map<string, RunResult[]>, numerator: string, denominator: string): number[] {
  const over = runs.get(denominator) ?? []
  return (runs.get(numerator) ?? []).map((run, round) => (run.cpu.proxy ?? 0) / (over[round]?.cpu.proxy ?? 1))
}

export async function streamsBench (harness: StreamsBenchHarness): Promise<Record<string, unknown>> {
  const { redis, upstreamUrl } = harness
  const processes = {
    recording: await harness.startGateway('gateway-recording'),
    relaying: await harness.startGateway('gateway-relaying'),
    passThrough: await harness.startGateway('gateway-pass-through')
  }
  const gateways = {
    recording: `http://127.0.0.1:${processes.recording.port}`,
    relaying: `http://127.0.0.1:${processes.relaying.port}`,
    passThrough: `http://127.0.0.1:${processes.passThrough.port}`
  }
  const sessions = {
    recording: await openSession(`${gateways.recording}/mcp`),
    relaying: await openSession(`${gateways.relaying}/mcp`),
    passThrough: await openSession(`${gateways.passThrough}/mcp`)
  }
  const streamedCall = streamedToolCall(NOTIFICATIONS)
  process.stdout.write(`\nresumable streams: a tool call answered with ${NOTIFICATIONS} progress notifications and its result over SSE, and one answered with JSON; gateways recording (streams.resumable: true), relaying without keeping (resumable: false), and passing through (resumable: false, keepAlive: 0)\n${harness.pinning}; the three gateways ${harness.gatewayCores === undefined ? 'not pinned' : `share core(s) ${harness.gatewayCores}`}\n`)

  // What the upstream sends and what each gateway makes of it: ids only where events are kept.
  const upstreamEvents = sseEvents(await (await post(upstreamUrl, streamedCall)).text())
  const payloadBytes = upstreamEvents.map((event) => Buffer.byteLength(event.data))
  const notificationBytes = average(payloadBytes.slice(0, -1))
  const resultBytes = payloadBytes.at(-1) ?? 0
  const relayed: Record<string, { events: number, withIds: number }> = {}
  for (const [name, url] of Object.entries(gateways)) {
    const events = sseEvents(await (await post(`${url}/mcp`, streamedCall, sessions[name as keyof typeof sessions])).text())
    relayed[name] = { events: events.length, withIds: events.filter((event) => event.id !== undefined).length }
  }
  process.stdout.write(`payload: ${upstreamEvents.length} SSE events from the upstream, notifications ${notificationBytes.toFixed(0)} bytes of JSON each, result ${resultBytes} bytes; relayed to the client: ${Object.entries(relayed).map(([name, counts]) => `${name} ${counts.events} events, ${counts.withIds} with ids`).join('; ')}\n\n`)

  const gatewayOf = new Map<string, keyof typeof gateways>()
  const scenario = (name: string, gateway: keyof typeof gateways, body: string): Scenario => {
    gatewayOf.set(name, gateway)
    return {
      name,
      proxy: gateway === 'recording' ? 'gateway-recording' : gateway === 'relaying' ? 'gateway-relaying' : 'gateway-pass-through',
      url: () => `${gateways[gateway]}/mcp`,
      body,
      headers: () => ({ 'mcp-session-id': sessions[gateway] })
    }
  }
  const streamedRecording = scenario('streamed call, recording', 'recording', streamedCall)
  const streamedRelaying = scenario('streamed call, relayed, not kept', 'relaying', streamedCall)
  const streamedPassThrough = scenario('streamed call, pass-through', 'passThrough', streamedCall)
  const jsonRecording = scenario('JSON call, recording', 'recording', jsonToolCall)
  const jsonPassThrough = scenario('JSON call, pass-through', 'passThrough', jsonToolCall)
  const streamed = [streamedRecording, streamedRelaying, streamedPassThrough]

  // 1. Capacity: CPU per request of every process, all five scenarios in alternating rounds. Each
  // gateway's code is warm before the warm-up that sizes its rounds: the first scenario's is not colder.
  for (const warmed of [...streamed, jsonRecording, jsonPassThrough]) await harness.run(warmed, { amount: PRE_WARM_REQUESTS })
  const capacityRuns = await harness.roundRuns([...streamed, jsonRecording, jsonPassThrough], ', streams')
  const capacity = Object.fromEntries([...capacityRuns].map(([name, runs]) => [name, summarize(runs)]))
  const cpu = (name: string): number => capacity[name]?.cpu.proxy ?? 0
  const ratios = {
    streamedRecording: cpu(streamedRecording.name) / cpu(streamedPassThrough.name),
    streamedRelaying: cpu(streamedRelaying.name) / cpu(streamedPassThrough.name),
    json: cpu(jsonRecording.name) / cpu(jsonPassThrough.name),
    streamedRecordingRounds: roundRatios(capacityRuns, streamedRecording.name, streamedPassThrough.name),
    jsonRounds: roundRatios(capacityRuns, jsonRecording.name, jsonPassThrough.name)
  }

  // 2. Latency of the streamed call at one fixed rate, below every gateway's capacity.
  const fixedRate = Math.round(Math.min(...streamed.map((s) => capacity[s.name]?.requestsPerSecond ?? 0)) * LATENCY_LOAD_SHARE)
  const latencyRuns = await harness.roundRuns(streamed, `, streams at ${fixedRate} req/s`, fixedRate)
  const latency = Object.fromEntries([...latencyRuns].map(([name, runs]) => [name, summarize(runs)]))
  const latencyCpu = (name: string): number => latency[name]?.cpu.proxy ?? 0
  const fixedRateRatios = {
    streamedRecording: latencyCpu(streamedRecording.name) / latencyCpu(streamedPassThrough.name),
    streamedRelaying: latencyCpu(streamedRelaying.name) / latencyCpu(streamedPassThrough.name),
    streamedRecordingRounds: roundRatios(latencyRuns, streamedRecording.name, streamedPassThrough.name)
  }

  // 3. Redis commands and the gateway's system calls per request, every request answered and every append arrived.
  const commands: Record<string, { total: number, perCommand: Record<string, number>, storeCalls: number, readSyscalls: number, writeSyscalls: number }> = {}
  for (const counted of [jsonRecording, jsonPassThrough, ...streamed]) {
    const metricsUrl = counted.url().replace(/\/mcp$/, '/metrics')
    const pid = processes[gatewayOf.get(counted.name) as keyof typeof processes].pid
    await settled(redis)
    const before = await redisCommandCalls(redis)
    const storeBefore = await gatewayCounts(metricsUrl, 'tools/call')
    const syscallsBefore = ioSyscalls(pid)
    const result = await harness.run(counted, { amount: COUNTED_REQUESTS })
    if (result.errors > 0) throw new Error(`${counted.name}: ${result.errors} errors while counting Redis commands`)
    await settled(redis)
    const syscallsAfter = ioSyscalls(pid)
    const perCommand = commandsPerRequest(before, await redisCommandCalls(redis), COUNTED_REQUESTS)
    const storeAfter = await gatewayCounts(metricsUrl, 'tools/call')
    commands[counted.name] = {
      total: Object.values(perCommand).reduce((sum, calls) => sum + calls, 0),
      perCommand,
      storeCalls: (storeAfter.storeCalls - storeBefore.storeCalls) / COUNTED_REQUESTS,
      readSyscalls: (syscallsAfter.reads - syscallsBefore.reads) / COUNTED_REQUESTS,
      writeSyscalls: (syscallsAfter.writes - syscallsBefore.writes) / COUNTED_REQUESTS
    }
  }
  const jsonCommandsEqual = JSON.stringify(commands[jsonRecording.name]?.perCommand) === JSON.stringify(commands[jsonPassThrough.name]?.perCommand)

  // 4. Redis bytes per kept event: many streams of the streamed call on a fresh session, then one long stream.
  const weighedSession = await openSession(`${gateways.recording}/mcp`)
  await settled(redis)
  const memoryBefore = await usedMemory(redis)
  const weighing = await autocannon({ url: `${gateways.recording}/mcp`, method: 'POST', headers: { ...mcpHeaders, 'mcp-session-id': weighedSession }, body: streamedCall, connections: WEIGHING_CONNECTIONS, amount: WEIGHED_CALLS })
  await settled(redis)
  const memoryDelta = await usedMemory(redis) - memoryBefore
  const weight = await weighStreams(redis, weighedSession)
  const longSession = await openSession(`${gateways.recording}/mcp`)
  await (await post(`${gateways.recording}/mcp`, streamedToolCall(LONG_STREAM_NOTIFICATIONS), longSession)).text()
  await settled(redis)
  const longWeight = await weighStreams(redis, longSession)
  const memory = {
    weighedCalls: WEIGHED_CALLS,
    weighingErrors: weighing.errors + weighing.timeouts + weighing.non2xx,
    streams: weight.streams,
    entriesPerStream: weight.entries / Math.max(1, weight.streams),
    /** Events that carry a JSON-RPC message (the priming and end entries do not). */
    messagesPerStream: NOTIFICATIONS + 1,
    bytesPerEntry: weight.streamBytes / Math.max(1, weight.entries),
    bytesPerMessage: weight.streamBytes / Math.max(1, weight.streams * (NOTIFICATIONS + 1)),
    bytesPerStream: weight.streamBytes / Math.max(1, weight.streams),
    indexBytesPerStream: weight.indexBytes / Math.max(1, weight.streams),
    usedMemoryPerStream: memoryDelta / Math.max(1, weight.streams),
    usedMemoryPerEntry: memoryDelta / Math.max(1, weight.entries),
    longStream: { notifications: LONG_STREAM_NOTIFICATIONS, entries: longWeight.entries, bytes: longWeight.streamBytes, bytesPerEntry: longWeight.streamBytes / Math.max(1, longWeight.entries) }
  }

  const targets = [
    { target: `gateway CPU per streamed request, recording ≤ ${CPU_TARGET} × pass-through`, value: ratios.streamedRecording, pass: ratios.streamedRecording <= CPU_TARGET },
    { target: 'JSON tool call: the same Redis commands per request with recording on and off', value: commands[jsonRecording.name]?.total ?? 0, pass: jsonCommandsEqual }
  ]

  printResults('capacity (median of rounds)', capacity)
  const range = (values: number[]): string => `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`
  process.stdout.write(`gateway CPU per request ÷ pass-through's: streamed call recording ${ratios.streamedRecording.toFixed(2)}× (rounds ${range(ratios.streamedRecordingRounds)}), relayed without keeping ${ratios.streamedRelaying.toFixed(2)}×; JSON call recording ${ratios.json.toFixed(2)}× (rounds ${range(ratios.jsonRounds)})\n`)
  printResults(`streamed call at ${fixedRate} req/s`, latency)
  process.stdout.write(`gateway CPU per request ÷ pass-through's at ${fixedRate} req/s: recording ${fixedRateRatios.streamedRecording.toFixed(2)}× (rounds ${range(fixedRateRatios.streamedRecordingRounds)}), relayed without keeping ${fixedRateRatios.streamedRelaying.toFixed(2)}×\n`)
  process.stdout.write(`\nper request, over ${COUNTED_REQUESTS} requests each at capacity: Redis commands (commandstats, the commands scripts run inside their EVALSHA included), session store calls (gateway metrics), the gateway's read/write system calls (/proc/<pid>/io)\n`)
  for (const [name, counted] of Object.entries(commands)) {
    process.stdout.write(`  ${name.padEnd(34)} ${counted.total.toFixed(3)}: ${Object.entries(counted.perCommand).map(([command, calls]) => `${command} ${calls.toFixed(3)}`).join(', ')}; store calls ${counted.storeCalls.toFixed(3)}; syscalls read ${counted.readSyscalls.toFixed(2)}, write ${counted.writeSyscalls.toFixed(2)}\n`)
  }
  process.stdout.write(`\nRedis per kept event (${memory.streams} streams of ${memory.entriesPerStream.toFixed(1)} entries, ${memory.weighingErrors} errors): MEMORY USAGE ${memory.bytesPerEntry.toFixed(0)} B per entry, ${memory.bytesPerMessage.toFixed(0)} B per relayed message, ${memory.bytesPerStream.toFixed(0)} B per stream, plus ${memory.indexBytesPerStream.toFixed(0)} B of session index per stream; used_memory delta ${memory.usedMemoryPerEntry.toFixed(0)} B per entry (${memory.usedMemoryPerStream.toFixed(0)} B per stream); one stream of ${memory.longStream.entries} entries: ${memory.longStream.bytesPerEntry.toFixed(0)} B per entry\n\n`)
  for (const target of targets) process.stdout.write(`${target.pass ? 'PASS' : 'MISS'}  ${target.target}: ${target.value.toFixed(3)}\n`)

  return {
    date: new Date().toISOString(),
    node: process.version,
    pinning: harness.pinning,
    gatewayCores: harness.gatewayCores,
    notifications: NOTIFICATIONS,
    payload: { upstreamEvents: upstreamEvents.length, notificationBytes, resultBytes },
    relayed,
    capacity,
    capacityRounds: Object.fromEntries(capacityRuns),
    ratios: { ...ratios, streamedRecordingRoundsMedian: median(ratios.streamedRecordingRounds), jsonRoundsMedian: median(ratios.jsonRounds) },
    fixedRate,
    latency,
    fixedRateRatios,
    commands,
    memory,
    targets
  }
}
