import fc from 'fast-check'
import { SignJWT } from 'jose'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { parseDuration } from '../src/config/duration.js'
import { eventually } from './helpers/eventually.js'
import { FuzzState, halfSent, MAX_BODY_BYTES, resolve, send, initializeMessage, type Answer, type GatewayUnderFuzz, type WireRequest } from './helpers/fuzz-client.js'
import type { ChildGatewaySpec, ChildStats } from './helpers/fuzz-gateway-child.js'
import { startFuzzGateways, type Crash, type FuzzGateways } from './helpers/fuzz-gateways.js'
import { crashSignature, curl, judgeAnswer, judgeLogLine, preview, type Violation } from './helpers/fuzz-invariants.js'
import { fuzzRun, type FuzzAction, type FuzzRequest } from './helpers/fuzz-requests.js'
import { DELAY_HEADER, MODE_HEADER, startMisbehavingUpstream, UPSTREAM_MARK_BODY, UPSTREAM_MARK_HEADER, type MisbehavingUpstream } from './helpers/misbehaving-upstream.js'
import { freePort, startTestRedis, type TestRedis } from './helpers/redis-server.js'

/*
 * The route fuzzer (docs/testing.md, "The route fuzzer"): fast-check generates short runs of
 * requests (heads, bodies, hostile hosts, live and stolen session ids, event ids the gateways
 * handed out, both protocol eras) against every kind of route of three gateways, in front of
 * upstreams that misbehave on demand, on a real Redis. Every answer must be documented (a coded
 * JSON-RPC error, or the upstream's own answer); the gateway process must stay up; after each run no
 * stream guard is left; after the whole fuzz nothing is left (timers, sockets, pub/sub, sessions kept
 * alive) and no session id or token is in the logs.
 *
 * FUZZ_DURATION (default 15s inside `npm test`, 10m with `npm run fuzz`) bounds the search,
 * FUZZ_SEED fixes it, FUZZ_SEED with FUZZ_PATH replays one counterexample. Known failures
 * (test/fixtures/fuzz-known-failures.json) are replayed first and must not fail; during the search
 * they are counted and let pass, so that the search goes on for new ones.
 */

const LONG_RUN = process.env.FUZZ_LONG === '1'
const DURATION_MS = parseDuration(process.env.FUZZ_DURATION ?? (LONG_RUN ? '10m' : '15s')) ?? 15_000
const SEED = process.env.FUZZ_SEED !== undefined && process.env.FUZZ_SEED !== '' ? Number(process.env.FUZZ_SEED) : (LONG_RUN ? Date.now() % 2 ** 31 : 20260728)
const REPLAY_PATH = process.env.FUZZ_PATH
/** With FUZZ_PATH: shrink that counterexample further (FUZZ_SHRINK=1) instead of replaying it once. */
const SHRINK = process.env.FUZZ_SHRINK === '1'
/** With FUZZ_PATH: only this kind of failure counts (shrinking stays on it). */
const TARGET = process.env.FUZZ_TARGET === '' ? undefined : process.env.FUZZ_TARGET
const MAX_ACTIONS = 6
/** Time to shrink a failure found when the search's time ran out. */
const SHRINK_BUDGET_MS = LONG_RUN || SHRINK ? 300_000 : 20_000
const IDLE_TIMEOUT_MS = 3_000
const GUARD_SITE = 'src/proxy/session-stream-guard.ts'

interface KnownFailure {
  readonly signature: string
  readonly seed: number
  readonly path: string
  readonly summary: string
  readonly reproduction: string
}
const known = (JSON.parse(readFileSync(new URL('./fixtures/fuzz-known-failures.json', import.meta.url), 'utf8')) as { failures: KnownFailure[] }).failures
/** FUZZ_LET_PASS: more signatures (separated by `|`) to count and let pass while searching. */
const knownSignatures = new Set([...known.map((failure) => failure.signature), ...(process.env.FUZZ_LET_PASS ?? '').split('|').filter((signature) => signature !== '')])

/** Every kind of failure seen, counted, with its first occurrence and where it replays (seed and run index). */
const findings = new Map<string, { count: number, first: string, seed: number, path: string | undefined }>()
const statuses = new Map<number, number>()
/** What some paths answered, to show they are reached: `<what> <status>` → count. */
const reached = new Map<string, number>()

function say (line: string): void {
  t.comment(line)
  if (LONG_RUN) process.stderr.write(`${line}\n`)
}

t.test(`route fuzzer (seed ${SEED}, ${DURATION_MS} ms)`, async (t) => {
  const redis: TestRedis = await startTestRedis({ args: ['--notify-keyspace-events', 'Ex'] })
  t.teardown(() => redis.close())
  const legacyUpstream = await startMisbehavingUpstream('legacy', 'legacy')
  const modernUpstream = await startMisbehavingUpstream('modern', 'modern')
  const statefulA = await startMisbehavingUpstream('stateful-a', 'stateful')
  const statefulB = await startMisbehavingUpstream('stateful-b', 'stateful')
  const upstreams: MisbehavingUpstream[] = [legacyUpstream, modernUpstream, statefulA, statefulB]
  t.teardown(async () => { await Promise.all(upstreams.map(async (upstream) => { await upstream.close() })) })
  const upstreamOrigins = upstreams.map((upstream) => new URL(upstream.url).host)

  const secret = 'route-fuzzer-jwt-secret-0123456789abcdef'
  const token = async (subject: string, key: string): Promise<string> => await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setExpirationTime('2h').sign(new TextEncoder().encode(key))
  const credentials = {
    header: { alice: { 'x-user': 'alice' }, bob: { 'x-user': 'bob' }, forged: { 'x-user': 'mallory' } },
    jwt: {
      alice: { authorization: `Bearer ${await token('alice', secret)}` },
      bob: { authorization: `Bearer ${await token('bob', secret)}` },
      forged: { authorization: `Bearer ${await token('alice', `${secret}-not-the-one`)}` }
    }
  }

  const routeTimeouts = { timeout: '1500ms', initializeTimeout: '1500ms' }
  const routes = {
    legacy: { path: '/legacy', upstream: legacyUpstream.url, upstreamEra: 'legacy', getStream: 'forward', ...routeTimeouts },
    auto: { path: '/auto', upstream: legacyUpstream.url, ...routeTimeouts },
    bridged: { path: '/bridged', upstream: modernUpstream.url, upstreamEra: 'modern', getStream: 'forward', ...routeTimeouts },
    modern: { path: '/modern', upstream: modernUpstream.url, ...routeTimeouts },
    stateful: { path: '/stateful', upstream: [statefulA.url, statefulB.url], upstreamSessions: true, healthCheck: { interval: '1s' }, ...routeTimeouts }
  } as const
  const common = (keyPrefix: string): Record<string, unknown> => ({
    redis: { url: redis.url, keyPrefix },
    sessions: { idleTimeout: `${IDLE_TIMEOUT_MS}ms`, maxLifetime: '1h', maxPerPrincipal: 0 },
    limits: { maxBodyBytes: MAX_BODY_BYTES },
    streams: { retention: '5s', keepAlive: '1s' },
    log: { level: 'info' }
  })
  const specs: ChildGatewaySpec[] = [
    {
      name: 'local', host: '127.0.0.1', port: await freePort(),
      config: { ...common('fz-local:'), sessions: { idleTimeout: `${IDLE_TIMEOUT_MS}ms`, maxLifetime: '1h', maxPerPrincipal: 0, binding: { header: 'x-user' } }, routes: Object.values(routes) }
    },
    {
      name: 'public', host: '0.0.0.0', port: await freePort(),
      config: {
        ...common('fz-public:'),
        listen: { trustProxy: true },
        sessions: { idleTimeout: `${IDLE_TIMEOUT_MS}ms`, maxLifetime: '1h', maxPerPrincipal: 0, binding: { jwt: { secret } } },
        routes: [routes.legacy, routes.auto, routes.bridged, routes.stateful]
      }
    },
    {
      name: 'cors', host: '127.0.0.1', port: await freePort(),
      config: {
        ...common('fz-cors:'),
        streams: { retention: '5s', keepAlive: '1s', maxConnectionTime: '2s' },
        security: { allowedOrigins: ['http://app.example', 'localhost'], allowedHosts: ['localhost', '127.0.0.1', 'gw.example'] },
        routes: [routes.legacy, routes.modern]
      }
    }
  ]
  const underFuzz: GatewayUnderFuzz[] = specs.map((spec) => {
    const config = spec.config as { routes: Array<{ path: string }>, sessions?: { binding?: Record<string, unknown> }, redis: { keyPrefix: string } }
    const routeKinds = Object.fromEntries(Object.entries(routes).filter(([, route]) => config.routes.includes(route)).map(([kind, route]) => [kind, route.path]))
    const binding = config.sessions?.binding
    return { name: spec.name, port: spec.port, routes: routeKinds, binding: binding === undefined ? 'none' : 'header' in binding ? 'header' : 'jwt', keyPrefix: config.redis.keyPrefix, trustProxy: spec.name === 'public' }
  })

  const gateways: FuzzGateways = await startFuzzGateways(specs)
  t.teardown(() => gateways.close())
  const state = new FuzzState(underFuzz, credentials, IDLE_TIMEOUT_MS)
  const names = specs.map((spec) => spec.name)
  const subscriber = redis.client()

  async function quiet (): Promise<boolean> {
    if (upstreams.some((upstream) => upstream.activeRequests() > 0)) return false
    const stats = await gateways.stats()
    return Object.values(stats.connections).every((count) => count === 0)
  }
  async function pubsub (): Promise<Record<string, number>> {
    const channels = await subscriber.pubsub('CHANNELS', '*') as string[]
    const counts: Record<string, number> = { '(patterns)': Number(await subscriber.pubsub('NUMPAT')) }
    if (channels.length > 0) {
      const numsub = await subscriber.pubsub('NUMSUB', ...channels) as Array<string | number>
      // A replica's own channel is named by its instance id, new at each restart: counted per gateway.
      for (let index = 0; index < numsub.length; index += 2) {
        const channel = String(numsub[index]).replace(/bridge:instance:[^:]+$/, 'bridge:instance:<replica>')
        counts[channel] = (counts[channel] ?? 0) + Number(numsub[index + 1])
      }
    }
    return counts
  }
  const guardTimers = (stats: ChildStats): number => Object.entries(stats.timersBySite).filter(([site]) => site.startsWith(GUARD_SITE)).reduce((sum, [, count]) => sum + count, 0)

  // Warm-up: a session on every route (era probes decided, lazy connections made), then the baseline.
  for (const gateway of underFuzz) {
    for (const kind of Object.keys(gateway.routes) as Array<keyof typeof routes>) {
      const sessionId = await state.liveSession(gateway, kind, 'alice')
      // A bridged call too: a replica subscribes its own bridge channel at its first one.
      await send({ gateway: gateway.name, port: gateway.port, method: 'POST', path: gateway.routes[kind] as string, abortMidBody: false, chunked: false, drop: false,
        headers: { host: `127.0.0.1:${gateway.port}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId ?? '', 'mcp-protocol-version': '2025-11-25', ...state.credentialsFor(gateway, 'alice') },
        body: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' })) })
    }
  }
  await eventually(quiet, { timeout: 10_000, interval: 100, description: 'the gateways and upstreams to be quiet after the warm-up' })
  // The baseline is the most of each kind of timer seen over a few seconds of quiet: health checks
  // and era probes make short-lived timers on their own schedule. Sampling over a period is the
  // behaviour here, hence the fixed pauses.
  const baseline: { timersBySite: Record<string, number>, refTimeouts: number } = { timersBySite: {}, refTimeouts: 0 }
  for (let sample = 0; sample < 8; sample++) {
    const stats = await gateways.stats()
    for (const [site, count] of Object.entries(stats.timersBySite)) baseline.timersBySite[site] = Math.max(baseline.timersBySite[site] ?? 0, count)
    baseline.refTimeouts = Math.max(baseline.refTimeouts, stats.refTimeouts)
    await sleep(400)
  }
  const baselinePubsub = await pubsub()

  /** The failing run's requests and answers, kept for the report; the last one kept is the smallest. */
  const failures: { last?: { signatures: string[], trace: string[] } } = {}
  let runs = 0

  async function waitForCrash (): Promise<boolean> {
    try {
      await eventually(() => gateways.crash() !== undefined, { timeout: 3_000, interval: 50 })
      return true
    } catch {
      return false
    }
  }

  async function sendOne (request: FuzzRequest, trace: string[], violations: Violation[], answered: Array<{ wire: WireRequest, answer: Answer }>): Promise<void> {
    const resolved = await resolve(state, request)
    const answer = await send(resolved.wire)
    state.requestsSent++
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
    state.learn(request, resolved.wire, resolved.sessionId, answer)
    trace.push(`[${request.gateway} ${request.route}, upstream ${request.upstreamMode}] ${curl(resolved.wire)}\n    → HTTP ${answer.status}${answer.failure === undefined ? '' : ` (${answer.failure})`} in ${answer.durationMs} ms ${preview(answer.body, 160)}`)
    answered.push({ wire: resolved.wire, answer })
    violations.push(...judgeAnswer({ wire: resolved.wire, stranger: resolved.stranger, upstreamOrigins }, answer))
    const what = request.method === 'GET' && resolved.wire.headers['last-event-id'] !== undefined && request.lastEventId?.kind === 'issued'
      ? 'resume with an issued event id'
      : request.method === 'POST' && resolved.sessionId !== undefined && !resolved.stranger ? `POST on a live session (${request.route})` : undefined
    if (what !== undefined) reached.set(`${what} → ${answer.status}`, (reached.get(`${what} → ${answer.status}`) ?? 0) + 1)
  }

  async function runAction (action: FuzzAction, trace: string[], violations: Violation[], answered: Array<{ wire: WireRequest, answer: Answer }>): Promise<void> {
    if (action.kind === 'request') return await sendOne(action.request, trace, violations, answered)
    if (action.kind === 'together') {
      await Promise.all(action.requests.map(async (request) => { await sendOne(request, trace, violations, answered) }))
      return
    }
    // A gateway closes while a slow initialize is in flight (so that closing takes a while), and a
    // request whose first bytes came before the close is completed during it.
    const gateway = state.gateway(action.gateway)
    const resolved = await resolve(state, { ...action.request, gateway: action.gateway })
    const received = legacyUpstream.received()
    const slow: WireRequest = {
      gateway: gateway.name, port: gateway.port, method: 'POST', path: '/legacy', abortMidBody: false, chunked: false, drop: false,
      headers: { host: `127.0.0.1:${gateway.port}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'x-request-id': state.nextRequestId(), [MODE_HEADER]: 'slow', [DELAY_HEADER]: '400', ...state.credentialsFor(gateway, 'alice') },
      body: Buffer.from(JSON.stringify(initializeMessage(1, '2025-11-25')))
    }
    const slowAnswer = send(slow)
    await eventually(() => legacyUpstream.received() > received, { timeout: 3_000, description: 'the slow initialize to reach the upstream' })
    const late = halfSent(resolved.wire)
    // Begun before the gateway closes: the gateway has read its first bytes (a connection that has
    // sent nothing is closed at once, docs/operating.md, "Shutdown"), as its own port tells, or
    // already answered them (a request line Node's parser refuses is answered at once).
    let lateAnswered = false
    void late.answer.then(() => { lateAnswered = true })
    const latePort = await late.connected
    await eventually(async () => latePort === undefined || lateAnswered || ((await gateways.stats()).reading[gateway.name] ?? []).includes(latePort), { timeout: 3_000, description: 'the late request\'s first bytes to be read' })
    await gateways.restart(action.gateway, async () => { late.finish() })
    const first = await slowAnswer
    const second = await late.answer
    state.requestsSent += 2
    trace.push(`[${gateway.name} restarts] ${curl(slow)}\n    → HTTP ${first.status} ${preview(first.body, 120)}`)
    trace.push(`[${gateway.name} closing, the rest of a request sent, upstream ${action.request.upstreamMode}] ${curl(resolved.wire)}\n    → HTTP ${second.status} ${preview(second.body, 160)}`)
    for (const [wire, answer] of [[slow, first], [resolved.wire, second]] as const) {
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
      answered.push({ wire, answer })
      violations.push(...judgeAnswer({ wire, stranger: false, upstreamOrigins }, answer))
    }
  }

  /** The crash as a violation (its stack, the last requests sent); the process is started again. */
  async function crashed (crash: Crash, violations: Violation[], trace: string[]): Promise<{ violations: Violation[], trace: string[] }> {
    // Every "no answer" around it is the crash.
    const kept = violations.filter((violation) => !violation.signature.startsWith('connection closed') && !violation.signature.startsWith('no response headers'))
    await gateways.revive()
    return { violations: [...kept, { signature: crashSignature(crash), detail: `${trace.slice(-3).join('\n')}\n${crash.stderr.split('\n').slice(0, 14).join('\n')}` }], trace }
  }

  /** One run: the actions, then the checks of the run. Returns what went wrong. */
  async function run (actions: FuzzAction[]): Promise<{ violations: Violation[], trace: string[] }> {
    runs++
    const violations: Violation[] = []
    const trace: string[] = []
    if (gateways.crash() !== undefined) await gateways.revive()
    try {
      return await runActions(actions, violations, trace)
    } catch (error) {
      // A crash noticed late (by a request whose client had already left, say) stops the run's checks.
      const crash = gateways.crash() ?? (await waitForCrash() ? gateways.crash() : undefined)
      if (crash === undefined) throw error
      return await crashed(crash, violations, trace)
    }
  }

  async function runActions (actions: FuzzAction[], violations: Violation[], trace: string[]): Promise<{ violations: Violation[], trace: string[] }> {
    const answered: Array<{ wire: WireRequest, answer: Answer }> = []
    const guardsBefore = guardTimers(await gateways.stats())
    for (const action of actions) {
      const answeredBefore = answered.length
      try {
        await runAction(action, trace, violations, answered)
      } catch (error) {
        if (gateways.crash() === undefined) throw error
      }
      const suspicious = answered.slice(answeredBefore).some(({ answer }) => answer.hung === true || (answer.failure !== undefined && !answer.cutByClient))
      const crash = gateways.crash() ?? (suspicious && await waitForCrash() ? gateways.crash() : undefined)
      if (crash !== undefined) return await crashed(crash, violations, trace)
    }
    // No stream guard outlives its stream: every stream of the run has ended by now or soon.
    try {
      await eventually(async () => guardTimers(await gateways.stats()) <= guardsBefore, { timeout: 4_000, interval: 100 })
    } catch {
      const stats = await gateways.stats()
      violations.push({ signature: 'a session stream guard is left running after its stream ended', detail: `${guardTimers(stats) - guardsBefore} guard timers more than before the run (${JSON.stringify(Object.fromEntries(Object.entries(stats.timersBySite).filter(([site]) => site.startsWith(GUARD_SITE))))})\n${trace.join('\n')}` })
    }
    for (const name of names) {
      const health = await send({ gateway: name, port: state.gateway(name).port, method: 'GET', path: '/healthz', headers: { host: `127.0.0.1:${state.gateway(name).port}` }, body: undefined, abortMidBody: false, chunked: false, drop: false })
      if (health.status !== 200 && gateways.crash() !== undefined) return await crashed(gateways.crash() as Crash, violations, trace)
      if (health.status !== 200) violations.push({ signature: '/healthz does not answer 200', detail: `${name}: ${health.status} ${health.failure ?? ''}` })
    }
    // The code in each gateway error's log line agrees with what the client got (docs/errors.md).
    const gatewayErrors = answered.filter(({ answer }) => answer.failure === undefined && answer.hung !== true && answer.status >= 400 && answer.headers[UPSTREAM_MARK_HEADER] === undefined && !answer.body.includes(UPSTREAM_MARK_BODY) && answer.body.includes('"jsonrpc":"2.0"'))
    const lineOf = (requestId: string): Record<string, unknown> | undefined => gateways.logs.find((line) => line.reqId === requestId && line.msg === 'request completed')
    // The answer's x-request-id names its line: the client's own, or one the gateway made (it could not read the client's).
    const idOf = ({ wire, answer }: { wire: WireRequest, answer: Answer }): string => String(answer.headers['x-request-id'] ?? wire.headers['x-request-id'] ?? '')
    await eventually(() => gatewayErrors.every((exchange) => lineOf(idOf(exchange)) !== undefined), { timeout: 2_000, interval: 50 }).catch(() => undefined)
    for (const { wire, answer } of gatewayErrors) {
      const line = lineOf(idOf({ wire, answer }))
      if (line === undefined) continue
      const problem = judgeLogLine(answer.status, answer.body, line.error)
      if (problem !== undefined) violations.push({ signature: 'a gateway error\'s log line disagrees with its answer', detail: `${curl(wire)}\n  → HTTP ${answer.status} ${preview(answer.body)}: ${problem}` })
    }
    return { violations, trace }
  }

  /** Where the current check is: its seed, the index of its run, whether it is shrinking. */
  const search: { seed: number, run: number, shrinking: boolean, path?: string | undefined } = { seed: SEED, run: -1, shrinking: false }
  /** A check of `seed` begins; `path`: it replays that one counterexample. */
  function checking (seed: number, path?: string): void {
    search.seed = seed
    search.run = -1
    search.shrinking = false
    search.path = path
  }

  /**
   * `letKnownPass`: known failures are counted, not failed (the search); `target`: only that kind of
   * failure fails (a known failure's replay, or shrinking it); else every failure fails.
   */
  function property (mode: { letKnownPass: boolean, target?: string | undefined }): fc.IAsyncProperty<[FuzzAction[]]> {
    return fc.asyncProperty(fuzzRun(names, MAX_ACTIONS), async (actions) => {
      // Before the first failure, run i of a seed replays as path "i"; shrinking attempts have no such path.
      if (!search.shrinking) search.run++
      const { violations, trace } = await run(actions)
      for (const violation of violations) {
        const finding = findings.get(violation.signature)
        const path = search.path ?? (search.shrinking ? undefined : String(search.run))
        if (finding === undefined) findings.set(violation.signature, { count: 1, first: violation.detail, seed: search.seed, path })
        else finding.count++
      }
      const failing = violations.filter((violation) => mode.target !== undefined ? violation.signature === mode.target : !mode.letKnownPass || !knownSignatures.has(violation.signature))
      if (failing.length === 0) return
      const signatures = [...new Set(failing.map((violation) => violation.signature))]
      search.shrinking = true
      failures.last = { signatures, trace: [...trace, '', ...failing.slice(0, 3).map((violation) => `${violation.signature}:\n${violation.detail}`)] }
      throw new Error(signatures.join('; '))
    })
  }

  function report (details: fc.RunDetails<[FuzzAction[]]>): string {
    const failure = failures.last
    return [
      `${failure?.signatures.join('; ') ?? (details.errorInstance as Error | undefined)?.message ?? 'failed'}`,
      `replay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath ?? ''} npx tap --disable-coverage test/fuzz-routes.test.ts (FUZZ_SHRINK=1 shrinks it further, FUZZ_TARGET=<signature> on that failure only)`,
      `known-failures entry: ${JSON.stringify({ signature: failure?.signatures[0], seed: details.seed, path: details.counterexamplePath })}`,
      'the smallest run found:',
      ...(failure?.trace ?? [])
    ].join('\n')
  }

  if (REPLAY_PATH === undefined) {
    await t.test('known failures, replayed from their seeds', async (t) => {
      for (const failure of known) {
        delete failures.last
        checking(failure.seed, failure.path)
        const details = await fc.check(property({ letKnownPass: false, target: failure.signature }), { seed: failure.seed, path: failure.path, numRuns: 1, endOnFailure: true })
        t.notOk(details.failed, `${failure.summary}\n${details.failed ? report(details) : ''}`)
        const last = failures.last as { signatures: string[] } | undefined
        if (details.failed && last !== undefined && !last.signatures.includes(failure.signature)) {
          t.comment(`the replay of ${failure.seed}:${failure.path} failed differently than recorded (${last.signatures.join('; ')})`)
        }
      }
    })
  }

  await t.test(REPLAY_PATH === undefined ? `search for new failures (${DURATION_MS} ms)` : `replay of ${SEED}:${REPLAY_PATH}`, async (t) => {
    delete failures.last
    say(REPLAY_PATH === undefined ? `searching with seed ${SEED} for ${DURATION_MS} ms (FUZZ_SEED=${SEED} searches the same again)` : `replaying seed ${SEED}, path ${REPLAY_PATH}`)
    const started = Date.now()
    const sentBefore = state.requestsSent
    checking(SEED, REPLAY_PATH)
    let details = REPLAY_PATH === undefined
      ? await fc.check(property({ letKnownPass: true }), { seed: SEED, numRuns: 1_000_000, interruptAfterTimeLimit: DURATION_MS, markInterruptAsFailure: false })
      : SHRINK
        ? await fc.check(property({ letKnownPass: false, target: TARGET }), { seed: SEED, path: REPLAY_PATH, interruptAfterTimeLimit: SHRINK_BUDGET_MS, markInterruptAsFailure: false })
        : await fc.check(property({ letKnownPass: false, target: TARGET }), { seed: SEED, path: REPLAY_PATH, numRuns: 1, endOnFailure: true })
    if (details.failed && details.interrupted && details.counterexamplePath !== null) {
      // The time ran out while shrinking: shrink on from where it stopped, with a budget of its own.
      details = await fc.check(property({ letKnownPass: true }), { seed: details.seed, path: details.counterexamplePath, interruptAfterTimeLimit: SHRINK_BUDGET_MS, markInterruptAsFailure: false })
    }
    say(`seed ${SEED}: ${details.numRuns} runs, ${state.requestsSent - sentBefore} requests in ${Math.round((Date.now() - started) / 1000)} s, ${details.numShrinks} shrinks, ${gateways.crashes()} gateway crashes`)
    if (details.failed && REPLAY_PATH !== undefined) say(report(details))
    t.notOk(details.failed, details.failed ? report(details) : 'no new kind of failure')
  })

  await t.test('nothing is left after the fuzz', async (t) => {
    if (gateways.crash() !== undefined) await gateways.revive()
    const stats = await eventually(async () => {
      if (!await quiet()) return false
      const now = await gateways.stats()
      const over = Object.entries(now.timersBySite).filter(([site, count]) => count > (baseline.timersBySite[site] ?? 0))
      return over.length === 0 && now.refTimeouts <= baseline.refTimeouts && upstreams.every((upstream) => upstream.openConnections() === 0) && now
    }, { timeout: 15_000, interval: 250, description: 'timers back to the baseline, no connection open' }).catch(async () => await gateways.stats())
    const timersLeft = Object.fromEntries(Object.entries(stats.timersBySite).filter(([site, count]) => count > (baseline.timersBySite[site] ?? 0)).map(([site, count]) => [site, `${count} (baseline ${baseline.timersBySite[site] ?? 0})`]))
    const upstreamSockets = Object.fromEntries(upstreams.map((upstream) => [upstream.name, upstream.openConnections()]))
    say(`resources left: timers over the baseline ${JSON.stringify(timersLeft)}, ref'd timeouts ${stats.refTimeouts} (baseline ${baseline.refTimeouts}), gateway connections ${JSON.stringify(stats.connections)}, upstream sockets ${JSON.stringify(upstreamSockets)}`)
    t.same(timersLeft, {}, 'no timer left beyond the baseline (live Timeout objects by the code that made them)')
    t.ok(stats.refTimeouts <= baseline.refTimeouts, `ref'd timeouts ${stats.refTimeouts} <= baseline ${baseline.refTimeouts}`)
    t.ok(Object.values(stats.connections).every((count) => count === 0), 'no gateway connection open')
    t.ok(Object.values(upstreamSockets).every((count) => count === 0), 'no socket open to the upstreams')

    const channels = await pubsub()
    const extraChannels = Object.fromEntries(Object.entries(channels).filter(([channel, count]) => count > (baselinePubsub[channel] ?? 0)))
    say(`pub/sub beyond the baseline: ${JSON.stringify(extraChannels)} (baseline ${JSON.stringify(baselinePubsub)})`)
    t.same(extraChannels, {}, 'no Redis pub/sub subscription beyond the baseline')

    // Nothing keeps a session alive once its client is gone: every session expires on its idle timeout.
    const canaries = await Promise.all(underFuzz.map(async (gateway) => await state.liveSession(gateway, 'legacy', 'alice')))
    const lastUse = Math.max(...[...state.minted.values()].map((minted) => minted.lastUsed))
    const sessionKeys = async (): Promise<string[]> => (await subscriber.keys('*session:*')).filter((key) => [...state.minted.keys()].some((id) => key.endsWith(id)))
    const alive = await eventually(async () => (await sessionKeys()).length === 0 || false, { timeout: Math.max(5_000, lastUse + IDLE_TIMEOUT_MS + 4_000 - Date.now()), interval: 250 })
      .then(() => [] as string[], async () => await sessionKeys())
    say(`sessions minted ${state.minted.size}, canaries ${canaries.filter((id) => id !== undefined).length}, still alive past their idle timeout: ${alive.length}`)
    t.same(alive.map((key) => key.replace(/[A-Za-z0-9_-]{32}\.[0-9a-z]{8,10}$/, '<id>')), [], `every session (${state.minted.size}, canaries included) expired within its idle timeout of its last request`)

    // Logs never carry a session id, a token or an event id (docs/operating.md, "Logs"; docs/streams.md).
    const logText = `${gateways.rawLogs.join('\n')}\n${gateways.stderr()}`
    const secrets = [...[...state.minted.keys()].map((id) => ['session id', id]), ...[...state.tokensUsed].map((value) => ['token', value]), ...state.issued.map((issued) => ['event id', issued.id])]
    const leaked = secrets.filter(([, value]) => value !== undefined && value.length >= 16 && logText.includes(value)).map(([kind, value]) => `${kind as string} ${(value as string).slice(0, 8)}…`)
    t.same(leaked, [], `no session id, token or event id in ${gateways.rawLogs.length} log lines`)
    const seen = upstreams.flatMap((upstream) => [...state.minted.keys()].filter((id) => upstream.headerValues.has(id)).map((id) => `${upstream.name} saw ${id.slice(0, 8)}…`))
    t.same(seen, [], 'no upstream ever received a gateway session id')

    say(`reached: ${JSON.stringify(Object.fromEntries([...reached].sort()))}`)
    say(`requests sent ${state.requestsSent}, runs ${runs}, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}`)
    for (const [signature, finding] of findings) {
      const replay = finding.path === undefined ? '' : `\n  replays as: ${JSON.stringify({ signature, seed: finding.seed, path: finding.path })}`
      say(`finding${knownSignatures.has(signature) ? ' (known)' : ''}: ${signature} ×${finding.count}${replay}\n  first: ${finding.first.split('\n').slice(0, 4).join('\n  ')}`)
    }
  })
})
