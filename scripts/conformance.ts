import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { validateConfig } from '../src/config/validate-config.js'
import { buildGateway } from '../src/gateway.js'
import { startConformanceUpstream, startModernConformanceUpstream, startStatefulConformanceUpstream } from '../test/fixtures/conformance-upstream.js'
import { startTestRedis } from '../test/helpers/redis-server.js'

/*
 * `npm run conformance`: the official MCP conformance suite (pinned in package.json) at spec
 * 2025-11-25, side by side: straight against a stateless upstream, through the gateway (real Redis)
 * to that upstream, through the gateway's era bridge (docs/era-bridge.md) to the same tools served by a
 * modern-only (2026-07-28) upstream that refuses every legacy client by itself, and through a route
 * with `upstreamSessions: true` to the same tools served by a stateful SDK v1 upstream that keeps
 * its sessions in memory. Exits non-zero when a scenario that passes direct fails through the
 * gateway, when one that passes through the gateway fails bridged, when any fails stateful (a
 * stateful upstream can pass them all), or when one of the session scenarios the gateway exists for
 * fails through it.
 */

const SPEC_VERSION = '2025-11-25'
/** Scenarios the gateway itself must pass, whatever the upstream does. */
const REQUIRED_THROUGH_GATEWAY = ['server-initialize', 'server-session-lifecycle', 'dns-rebinding-protection']
/** Per scenario; the expected failures wait for a client answer that never comes. */
const SCENARIO_TIMEOUT_MS = 10_000

type Outcome = 'pass' | 'fail' | 'n/a'

const root = fileURLToPath(new URL('../..', import.meta.url))
const suiteEntry = createRequire(import.meta.url).resolve('@modelcontextprotocol/conformance/dist/index.js')
const expectedFailuresFile = join(root, 'conformance/expected-failures.yml')

async function expectedFailures (): Promise<Map<string, string>> {
  const text = await readFile(expectedFailuresFile, 'utf8')
  const names = (parseYaml(text) as { server?: string[] }).server ?? []
  const reasons = new Map<string, string>()
  for (const name of names) reasons.set(name, /- (\S+)\s+# (.*)$/m.exec(text.split('\n').find((line) => line.includes(`- ${name} `)) ?? '')?.[2] ?? '')
  return reasons
}

/** Runs the suite against `url`; returns each scenario's outcome from its checks.json. */
async function runSuite (label: string, url: string): Promise<Map<string, Outcome>> {
  const outputDir = await mkdtemp(join(tmpdir(), `mcpgw-conformance-${label}-`))
  try {
    const child = spawn(process.execPath, [suiteEntry, 'server', '--url', url, '--spec-version', SPEC_VERSION,
      '--timeout', String(SCENARIO_TIMEOUT_MS), '--expected-failures', expectedFailuresFile, '-o', outputDir], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    await new Promise<void>((resolve) => child.on('exit', () => resolve()))
    const outcomes = new Map<string, Outcome>()
    for (const entry of (await readdir(outputDir)).sort()) {
      const scenario = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(entry)?.[1]
      if (scenario === undefined) continue
      const checks = JSON.parse(await readFile(join(outputDir, entry, 'checks.json'), 'utf8')) as Array<{ status: string }>
      const failed = checks.some((check) => check.status === 'FAILURE')
      const succeeded = checks.some((check) => check.status === 'SUCCESS')
      outcomes.set(scenario, failed ? 'fail' : succeeded ? 'pass' : 'n/a')
    }
    if (outcomes.size === 0) throw new Error(`the conformance suite produced no results for ${label}:\n${output}`)
    return outcomes
  } finally {
    await rm(outputDir, { recursive: true, force: true })
  }
}

async function main (): Promise<number> {
  const redis = await startTestRedis()
  const upstream = await startConformanceUpstream()
  const modernUpstream = await startModernConformanceUpstream()
  const statefulUpstream = await startStatefulConformanceUpstream()
  let gateway: Awaited<ReturnType<typeof buildGateway>> | undefined
  // Inside the try: a config the gateway refuses must not leave redis-server running.
  try {
    const config = validateConfig({
      listen: { host: '127.0.0.1', port: 0 },
      log: { level: 'warn' },
      redis: { url: redis.url, keyPrefix: 'conformance:' },
      routes: [
        { path: '/mcp', upstream: upstream.url },
        { path: '/bridged', upstream: modernUpstream.url, upstreamEra: 'modern', getStream: 'forward' },
        { path: '/stateful', upstream: [statefulUpstream.url], upstreamSessions: true, getStream: 'forward' }
      ]
    })
    gateway = await buildGateway(config)
    await gateway.listen({ host: config.listen.host, port: 0 })
    const address = gateway.server.address()
    if (address === null || typeof address === 'string') throw new Error('gateway has no address')
    const gatewayUrl = `http://127.0.0.1:${address.port}/mcp`
    const bridgedUrl = `http://127.0.0.1:${address.port}/bridged`
    const statefulUrl = `http://127.0.0.1:${address.port}/stateful`
    process.stdout.write(`conformance ${SPEC_VERSION}: direct ${upstream.url}, gateway ${gatewayUrl}, bridged ${bridgedUrl} to ${modernUpstream.url}, ` +
      `stateful ${statefulUrl} to ${statefulUpstream.url} (Redis on ${redis.port})\n`)
    const [direct, throughGateway, bridged, stateful] = await Promise.all([
      runSuite('direct', upstream.url), runSuite('gateway', gatewayUrl), runSuite('bridged', bridgedUrl), runSuite('stateful', statefulUrl)
    ])
    const expected = await expectedFailures()
    const scenarios = [...new Set([...direct.keys(), ...throughGateway.keys(), ...bridged.keys(), ...stateful.keys()])]

    const width = Math.max(...scenarios.map((name) => name.length))
    process.stdout.write(`\n${'scenario'.padEnd(width)}  direct  gateway  bridged  stateful  note\n`)
    const problems: string[] = []
    for (const scenario of scenarios) {
      const directOutcome = direct.get(scenario) ?? 'n/a'
      const gatewayOutcome = throughGateway.get(scenario) ?? 'n/a'
      const bridgedOutcome = bridged.get(scenario) ?? 'n/a'
      const statefulOutcome = stateful.get(scenario) ?? 'n/a'
      let note = expected.has(scenario) ? `expected failure: ${expected.get(scenario) ?? ''}` : ''
      if (expected.has(scenario) && (bridgedOutcome === 'pass' || statefulOutcome === 'pass')) {
        const passes = [
          ...(bridgedOutcome === 'pass' ? ['bridged (input_required, answered through Redis)'] : []),
          ...(statefulOutcome === 'pass' ? ['stateful (the answer reaches the upstream session that asked)'] : [])
        ]
        note = `fails with a stateless legacy upstream; passes ${passes.join(' and ')}`
      }
      if (directOutcome === 'pass' && gatewayOutcome !== 'pass') problems.push(`${scenario} passes direct but not through the gateway`)
      if (gatewayOutcome === 'pass' && bridgedOutcome !== 'pass') problems.push(`${scenario} passes through the gateway but not bridged to the modern-only upstream`)
      // A stateful upstream can do everything a server can: every scenario, server-to-client ones included.
      if (statefulOutcome !== 'pass') problems.push(`${scenario} fails through the gateway to a stateful upstream`)
      if (REQUIRED_THROUGH_GATEWAY.includes(scenario) && gatewayOutcome !== 'pass') problems.push(`${scenario} must pass through the gateway`)
      if (directOutcome === 'n/a' && gatewayOutcome === 'pass') note = 'not applicable to the stateless upstream alone; passes through the gateway'
      process.stdout.write(`${scenario.padEnd(width)}  ${directOutcome.padEnd(6)}  ${gatewayOutcome.padEnd(7)}  ${bridgedOutcome.padEnd(7)}  ${statefulOutcome.padEnd(8)}  ${note}\n`)
    }
    for (const required of REQUIRED_THROUGH_GATEWAY) {
      if (!throughGateway.has(required)) problems.push(`${required} did not run through the gateway`)
    }
    for (const problem of problems) process.stdout.write(`\nFAIL: ${problem}`)
    const count = (outcomes: Map<string, Outcome>): number => [...outcomes.values()].filter((outcome) => outcome === 'pass').length
    process.stdout.write(`\nconformance: gateway ${count(throughGateway)}/${scenarios.length} scenarios passed, direct ${count(direct)}/${scenarios.length}, bridged to a modern-only upstream ${count(bridged)}/${scenarios.length}, stateful ${count(stateful)}/${scenarios.length}\n`)
    return problems.length === 0 ? 0 : 1
  } finally {
    await gateway?.close()
    await upstream.close()
    await modernUpstream.close()
    await statefulUpstream.close()
    await redis.close()
  }
}

process.exitCode = await main()
