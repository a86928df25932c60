import { gatewayCounts } from './redis-counts.js'
import { initialize, jsonToolCall, mcpHeaders } from './mcp-requests.js'
import { printResults, summarize, type RoundLoad, type RunResult, type Scenario } from './rounds.js'

/*
 * The stateful-upstreams comparison of `npm run bench` (BENCH_STATEFUL=1 or only; docs/performance.md,
 * "Stateful upstreams"): what the gateway costs in front of a server that keeps its own sessions,
 * against @fastify/http-proxy in front of one instance of it. Both carry the same tool call on a
 * live session (the bare proxy with the upstream's session id, the gateway with its own, which it
 * maps to the upstream's in the one round trip of the session check) and the same initialize
 * (the gateway's also mints and stores the mapping).
 */

/** Requests on the live session counted for Redis round trips, every one answered. */
const COUNTED_REQUESTS = 2_000

export type StatefulRole = 'upstream-stateful' | 'bare-stateful' | 'gateway-stateful'

export interface StatefulBenchHarness {
  readonly pinning: string
  /** Starts a process of `role` in front of `upstreamUrl` (its CPU time is read from then on). */
  start (role: StatefulRole, upstreamUrl?: string): Promise<{ port: number }>
  run (scenario: Scenario, load: RoundLoad): Promise<RunResult>
  roundRuns (scenarios: Scenario[], label: string): Promise<Map<string, RunResult[]>>
}

async function openSession (url: string): Promise<string> {
  const answer = await fetch(url, { method: 'POST', headers: mcpHeaders, body: initialize })
  await answer.text()
  const id = answer.headers.get('mcp-session-id')
  if (answer.status !== 200 || id === null) throw new Error(`no session from ${url}: HTTP ${answer.status}`)
  await (await fetch(url, { method: 'POST', headers: { ...mcpHeaders, 'mcp-session-id': id }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text()
  return id
}

export async function statefulBench (harness: StatefulBenchHarness): Promise<Record<string, unknown>> {
  const upstreamUrl = `http://127.0.0.1:${(await harness.start('upstream-stateful')).port}/mcp`
  const bareUrl = `http://127.0.0.1:${(await harness.start('bare-stateful', upstreamUrl)).port}/mcp`
  const gatewayPort = (await harness.start('gateway-stateful', upstreamUrl)).port
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}/mcp`
  const bareSession = await openSession(bareUrl)
  const gatewaySession = await openSession(gatewayUrl)
  const bareCall: Scenario = { name: 'bare proxy, stateful, tools/call', proxy: 'bare-stateful', upstream: 'upstream-stateful', url: () => bareUrl, body: jsonToolCall, headers: () => ({ 'mcp-session-id': bareSession }) }
  const gatewayCall: Scenario = { name: 'gateway, stateful route, tools/call', proxy: 'gateway-stateful', upstream: 'upstream-stateful', url: () => gatewayUrl, body: jsonToolCall, headers: () => ({ 'mcp-session-id': gatewaySession }) }
  const bareInitialize: Scenario = { name: 'bare proxy, stateful, initialize', proxy: 'bare-stateful', upstream: 'upstream-stateful', url: () => bareUrl, body: initialize }
  const gatewayInitialize: Scenario = { name: 'gateway, stateful route, initialize', proxy: 'gateway-stateful', upstream: 'upstream-stateful', url: () => gatewayUrl, body: initialize }
  process.stdout.write(`\nstateful upstreams: the gateway (upstreamSessions: true, one instance) against a bare proxy in front of the same stateful upstream\n${harness.pinning}\n\n`)

  const calls = await harness.roundRuns([bareCall, gatewayCall], ' (stateful)')
  const metricsUrl = `http://127.0.0.1:${gatewayPort}/metrics`
  const before = await gatewayCounts(metricsUrl, 'tools/call')
  await harness.run(gatewayCall, { amount: COUNTED_REQUESTS })
  const after = await gatewayCounts(metricsUrl, 'tools/call')
  const roundTripsPerRequest = (after.touch - before.touch) / COUNTED_REQUESTS
  const storeCallsPerRequest = (after.storeCalls - before.storeCalls) / COUNTED_REQUESTS
  // Last: every initialize leaves a session behind on the upstream and in Redis.
  const initializes = await harness.roundRuns([bareInitialize, gatewayInitialize], ' (stateful)')

  const summary = (runs: Map<string, RunResult[]>, scenario: Scenario): RunResult => summarize(runs.get(scenario.name) ?? [])
  const results = {
    [bareCall.name]: summary(calls, bareCall),
    [gatewayCall.name]: summary(calls, gatewayCall),
    [bareInitialize.name]: summary(initializes, bareInitialize),
    [gatewayInitialize.name]: summary(initializes, gatewayInitialize)
  }
  const ratio = (gateway: Scenario, bare: Scenario): number => (results[gateway.name]?.cpu.proxy ?? 0) / (results[bare.name]?.cpu.proxy ?? 1)
  const ratios = {
    callCpuPerRequest: ratio(gatewayCall, bareCall),
    initializeCpuPerRequest: ratio(gatewayInitialize, bareInitialize)
  }
  printResults('stateful (median of rounds)', results)
  process.stdout.write(`gateway / bare proxy on a stateful upstream: CPU per tools/call ${ratios.callCpuPerRequest.toFixed(2)}×, per initialize ${ratios.initializeCpuPerRequest.toFixed(2)}×\n`)
  process.stdout.write(`Redis on the stateful route: ${roundTripsPerRequest.toFixed(3)} round trips per tools/call (touch, which also reads the instance and the upstream session id), ${storeCallsPerRequest.toFixed(3)} store calls of any kind, over ${COUNTED_REQUESTS.toLocaleString('en-US')} requests\n`)
  return { date: new Date().toISOString(), pinning: harness.pinning, results, ratios, redis: { roundTripsPerRequest, storeCallsPerRequest } }
}
