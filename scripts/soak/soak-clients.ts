import { setTimeout as sleep } from 'node:timers/promises'
import { fetch, type Agent } from 'undici'
import { SseParser } from '../../src/mcp/sse-parser.js'
import { seededRandom } from '../../test/helpers/session-workload.js'
import type { SoakLedger, StreamRoute } from './soak-ledger.js'

/*
 * The soak's clients: seeded workers, each running one scenario after another until the deadline, on
 * sessions of its own, against two replicas. Every answer is judged against what the MCP transport
 * rules say (docs/architecture.md, "How a session ends"; docs/security.md for the binding):
 * - a request with an ended id, started after the end was acknowledged, gets 404 on every replica;
 * - a request carrying another principal's header gets 404, and a stranger's DELETE ends nothing;
 * - a GET stream ends within STREAM_END_BOUND_MS of its session's end being acknowledged elsewhere.
 * A 5xx (or no answer) overlapping a Redis outage is refused service, not a wrong answer; a 404 on a
 * session created before an outage means Redis lost it (it restarts empty), and ends the scenario.
 */

export const STREAM_END_BOUND_MS = 2_000
const PROTOCOL_VERSION = '2025-11-25'
const REQUEST_TIMEOUT_MS = 20_000
const PRINCIPALS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']
/** How long the hammer keeps going after the end was acknowledged elsewhere. */
const HAMMER_AFTER_END_MS = 300
const SLOW_READ_BUDGET_MS = 5_000
/** A request this close to the idle timeout may meet an expired session. */
const IDLE_MARGIN_MS = 1_000

export type RouteName = 'legacy' | 'bridged'
export const ROUTE_PATHS: Record<RouteName, string> = { legacy: '/legacy', bridged: '/bridged' }
const STREAM_ROUTE: Record<RouteName, StreamRoute> = { legacy: 'forwarded', bridged: 'bridged' }

export const FAULTS = {
  slowReader: 'slow reader',
  disconnect: 'client gone mid-stream',
  deleteElsewhere: 'DELETE on the other replica',
  adminDeleteElsewhere: 'admin DELETE on the other replica',
  endUnderStream: 'session ended under an open GET stream',
  flood: 'initialize flood',
  redisRestart: 'Redis restart'
} as const

export interface Replica { readonly name: string, readonly origin: string }

export interface ClientContext {
  readonly replicas: readonly Replica[]
  readonly adminToken: string
  readonly ledger: SoakLedger
  /** Aborts every request still running when the soak stops. */
  readonly signal: AbortSignal
  readonly deadline: number
  /** The clients' own connection pool: destroyed when they stop, so no idle keep-alive is left. */
  readonly dispatcher: Agent
  /** The replicas' `sessions.idleTimeout`: a session left alone longer may have expired. */
  readonly idleTimeoutMs: number
}

interface Answer {
  readonly status: number
  readonly text: string
  readonly sessionId: string | null
  readonly started: number
  readonly finished: number
}

interface Session {
  readonly route: RouteName
  readonly principal: string
  readonly id: string
  readonly home: number
  readonly created: number
  /** When the latest request on it finished: idle expiry counts from the last accepted request. */
  lastActive: number
}

type Random = () => number

function pick<T> (random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T
}

function between (random: Random, low: number, high: number): number {
  return Math.floor(low + random() * (high - low))
}

function requestSignal (context: ClientContext, own?: AbortSignal): AbortSignal {
  return AbortSignal.any([context.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...(own === undefined ? [] : [own])])
}

function mcpHeaders (principal: string, sessionId?: string): Record<string, string> {
  return {
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'mcp-protocol-version': PROTOCOL_VERSION,
    'x-soak-principal': principal,
    ...(sessionId === undefined ? {} : { 'mcp-session-id': sessionId })
  }
}

let nextRequestId = 1

function rpc (method: string, params?: Record<string, unknown>): string {
  return JSON.stringify({ jsonrpc: '2.0', id: nextRequestId++, method, ...(params === undefined ? {} : { params }) })
}

const initializeBody = (): string => rpc('initialize', {
  protocolVersion: PROTOCOL_VERSION,
  capabilities: {},
  clientInfo: { name: 'soak-client', version: '1.0.0' }
})

/** One request, read to its end; a failure to connect or read is status 0. */
async function call (context: ClientContext, kind: string, url: string, init: { method: string, headers: Record<string, string>, body?: string }): Promise<Answer> {
  context.ledger.countRequest(kind)
  const started = Date.now()
  try {
    const response = await fetch(url, { ...init, dispatcher: context.dispatcher, signal: requestSignal(context) })
    const text = await response.text()
    return { status: response.status, text, sessionId: response.headers.get('mcp-session-id'), started, finished: Date.now() }
  } catch (error) {
    return { status: 0, text: (error as Error).message, sessionId: null, started, finished: Date.now() }
  }
}

function describe (answer: Answer, what: string): string {
  return `${what}: ${answer.status} ${answer.text.slice(0, 160).replace(/\s+/g, ' ')}`
}

function refusedInOutage (context: ClientContext, answer: Answer): boolean {
  if ((answer.status === 0 || answer.status >= 500) && context.ledger.overlapsOutage(answer.started, answer.finished)) {
    context.ledger.refusedDuringOutage++
    return true
  }
  return false
}

type LiveOutcome = 'ok' | 'gone'

/** Judges an answer on a session the client believes live. */
function checkLive (context: ClientContext, session: Session, kind: string, answer: Answer, accepted: readonly number[] = [200]): LiveOutcome {
  if (accepted.includes(answer.status)) {
    session.lastActive = answer.finished
    return 'ok'
  }
  if (refusedInOutage(context, answer)) return 'gone'
  if (answer.status === 404 && answer.started - session.lastActive >= context.idleTimeoutMs - IDLE_MARGIN_MS) {
    context.ledger.idleExpired++
    return 'gone'
  }
  if (answer.status === 404 && context.ledger.lostSince(session.created, answer.finished)) {
    context.ledger.lostInRestart++
    return 'gone'
  }
  context.ledger.noteUnexpected(`${kind} on a live ${session.route} session`, `${describe(answer, kind)} (session age ${answer.finished - session.created} ms)`)
  return 'gone'
}

/** Judges a request with an ended id, started after the end was acknowledged: 404 only. */
function checkEnded (context: ClientContext, answer: Answer, what: string): void {
  if (answer.status === 404 || refusedInOutage(context, answer)) return
  context.ledger.servedAfterEnd.push(describe(answer, what))
}

/** Judges a request made with another principal's header: 404 only. */
function checkStranger (context: ClientContext, answer: Answer, what: string): void {
  if (answer.status === 404 || refusedInOutage(context, answer)) return
  context.ledger.servedToOtherPrincipal.push(describe(answer, what))
}

function url (context: ClientContext, replica: number, route: RouteName): string {
  return `${(context.replicas[replica] as Replica).origin}${ROUTE_PATHS[route]}`
}

function otherReplica (context: ClientContext, replica: number): number {
  return (replica + 1) % context.replicas.length
}

async function openSession (context: ClientContext, route: RouteName, principal: string, home: number): Promise<Session | undefined> {
  const answer = await call(context, 'initialize', url(context, home, route), { method: 'POST', headers: mcpHeaders(principal), body: initializeBody() })
  if (answer.status !== 200 || answer.sessionId === null) {
    if (!refusedInOutage(context, answer)) context.ledger.noteUnexpected(`initialize on ${route}`, describe(answer, 'initialize'))
    return undefined
  }
  const session: Session = { route, principal, id: answer.sessionId, home, created: answer.finished, lastActive: answer.finished }
  const initialized = await call(context, 'notification', url(context, home, route), {
    method: 'POST',
    headers: mcpHeaders(principal, session.id),
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })
  })
  return checkLive(context, session, 'notifications/initialized', initialized, [202]) === 'ok' ? session : undefined
}

async function post (context: ClientContext, session: Session, replica: number, kind: string, body: string, principal = session.principal): Promise<Answer> {
  return await call(context, kind, url(context, replica, session.route), { method: 'POST', headers: mcpHeaders(principal, session.id), body })
}

async function deleteSession (context: ClientContext, session: Session, replica: number, principal = session.principal): Promise<Answer> {
  return await call(context, 'DELETE', url(context, replica, session.route), { method: 'DELETE', headers: mcpHeaders(principal, session.id) })
}

async function adminDelete (context: ClientContext, replica: number, sessionId: string): Promise<Answer> {
  return await call(context, 'admin DELETE', `${(context.replicas[replica] as Replica).origin}/admin/sessions/${encodeURIComponent(sessionId)}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${context.adminToken}` }
  })
}

/** Ends the session from `replica`, by the client's DELETE or the admin API; resolves with the acknowledgement time. */
async function endElsewhere (context: ClientContext, session: Session, replica: number, by: 'client' | 'admin'): Promise<number | undefined> {
  const answer = by === 'client' ? await deleteSession(context, session, replica) : await adminDelete(context, replica, session.id)
  if (checkLive(context, session, by === 'client' ? 'DELETE' : 'admin DELETE', answer, [200, 204]) !== 'ok') return undefined
  context.ledger.countFault(by === 'client' ? FAULTS.deleteElsewhere : FAULTS.adminDeleteElsewhere)
  return answer.finished
}

/** Probes an ended session on every replica: each probe starts after the acknowledgement. */
async function probeEnded (context: ClientContext, session: Session, what: string): Promise<void> {
  for (let replica = 0; replica < context.replicas.length; replica++) {
    checkEnded(context, await post(context, session, replica, 'probe: ended id', rpc('tools/list')), `${what}, then tools/list on ${(context.replicas[replica] as Replica).name}`)
  }
}

function otherPrincipal (random: Random, principal: string): string {
  return pick(random, PRINCIPALS.filter((name) => name !== principal))
}

function routeCall (random: Random, route: RouteName): { kind: string, body: string } {
  const roll = random()
  if (roll < 0.35) return { kind: 'tools/list', body: rpc('tools/list') }
  if (roll < 0.7) return { kind: 'tools/call', body: rpc('tools/call', { name: 'echo', arguments: { text: `soak ${between(random, 0, 1e6)}` } }) }
  if (route === 'legacy') return { kind: 'tools/call (streamed)', body: rpc('tools/call', { name: 'stream-two-messages', arguments: { gapMs: between(random, 0, 50) } }) }
  return { kind: 'tools/call (streamed)', body: rpc('tools/call', { name: 'count', arguments: { n: between(random, 1, 4) }, _meta: { progressToken: `p${nextRequestId}` } }) }
}

/** A session used for a few calls, probed by strangers now and then, deleted by its client. */
async function normalClient (context: ClientContext, random: Random, route: RouteName): Promise<void> {
  const principal = pick(random, PRINCIPALS)
  const home = between(random, 0, context.replicas.length)
  const session = await openSession(context, route, principal, home)
  if (session === undefined) return
  const calls = between(random, 2, 7)
  for (let index = 0; index < calls; index++) {
    const { kind, body } = routeCall(random, route)
    const answer = await post(context, session, home, kind, body)
    if (checkLive(context, session, kind, answer) === 'gone') return
    if (!answer.text.includes('"result"')) context.ledger.noteUnexpected(`${kind} without a result`, describe(answer, kind))
    if (random() < 0.3) {
      const stranger = otherPrincipal(random, principal)
      const probed = await post(context, session, between(random, 0, context.replicas.length), 'probe: other principal', rpc('tools/list'), stranger)
      checkStranger(context, probed, `tools/list on ${session.route} with ${stranger}'s header on ${principal}'s session`)
    }
  }
  if (random() < 0.3) {
    const stranger = otherPrincipal(random, principal)
    const refused = await deleteSession(context, session, between(random, 0, context.replicas.length), stranger)
    checkStranger(context, refused, `DELETE with ${stranger}'s header on ${principal}'s session`)
    const after = await post(context, session, home, 'tools/list', rpc('tools/list'))
    if (after.status === 404 && !context.ledger.lostSince(session.created, after.finished)) {
      context.ledger.servedToOtherPrincipal.push(describe(after, `${principal}'s session after a DELETE by ${stranger}`))
      return
    }
    if (checkLive(context, session, 'tools/list', after) === 'gone') return
  }
  const deleted = await deleteSession(context, session, home)
  if (checkLive(context, session, 'DELETE', deleted, [200, 204]) !== 'ok') return
  await probeEnded(context, session, 'DELETE acknowledged')
}

/**
 * A client keeps calling on its replica while its session is ended on the other one. Requests that
 * started before the acknowledgement may be served; every one started after it must get 404.
 */
async function endedWhileInUse (context: ClientContext, random: Random, route: RouteName, by: 'client' | 'admin'): Promise<void> {
  const principal = pick(random, PRINCIPALS)
  const home = between(random, 0, context.replicas.length)
  const session = await openSession(context, route, principal, home)
  if (session === undefined) return
  let acknowledged: number | undefined
  let stopAt = Number.POSITIVE_INFINITY
  let gone = false
  const hammer = (async () => {
    while (Date.now() < stopAt && !gone) {
      const answer = await post(context, session, home, 'tools/list', rpc('tools/list'))
      if (acknowledged !== undefined && answer.started > acknowledged) {
        checkEnded(context, answer, `tools/list on ${(context.replicas[home] as Replica).name}, started ${answer.started - acknowledged} ms after the ${by} end on the other replica`)
      } else if (answer.status !== 404 && checkLive(context, session, 'tools/list', answer) === 'gone') {
        gone = true
      }
    }
  })()
  await sleep(between(random, 100, 600))
  acknowledged = gone ? undefined : await endElsewhere(context, session, otherReplica(context, home), by)
  stopAt = acknowledged === undefined ? 0 : acknowledged + HAMMER_AFTER_END_MS
  await hammer
  if (acknowledged !== undefined) await probeEnded(context, session, `${by} end acknowledged on the other replica`)
}

/** Reads a big answer at a few KiB/s; gives up after a budget (then it is also a client gone mid-stream). */
async function slowReader (context: ClientContext, random: Random, route: RouteName): Promise<void> {
  const principal = pick(random, PRINCIPALS)
  const home = between(random, 0, context.replicas.length)
  const session = await openSession(context, route, principal, home)
  if (session === undefined) return
  const size = between(random, 16, 257) * 1024
  const bytesPerSecond = between(random, 4, 17) * 1024
  const own = new AbortController()
  context.ledger.countRequest('tools/call (slow read)')
  const started = Date.now()
  let received = 0
  let complete = false
  let text = ''
  try {
    const response = await fetch(url(context, home, route), {
      method: 'POST',
      headers: mcpHeaders(principal, session.id),
      body: rpc('tools/call', { name: 'echo', arguments: { text: 'x'.repeat(size) } }),
      dispatcher: context.dispatcher,
      signal: requestSignal(context, own.signal)
    })
    if (checkLive(context, session, 'tools/call (slow read)', { status: response.status, text: '', sessionId: null, started, finished: Date.now() }) === 'gone') {
      await response.body?.cancel()
      return
    }
    context.ledger.countFault(FAULTS.slowReader)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    for (;;) {
      if (Date.now() - started > SLOW_READ_BUDGET_MS) {
        context.ledger.countFault(FAULTS.disconnect)
        own.abort()
        break
      }
      const { done, value } = await reader.read()
      if (done) {
        complete = true
        break
      }
      received += value.byteLength
      if (text.length < 400) text += decoder.decode(value, { stream: true }).slice(0, 200)
      // Paced to the rate, but never past the budget: one chunk may hold many seconds' worth.
      const due = Math.min(started + received / bytesPerSecond * 1000, started + SLOW_READ_BUDGET_MS + 1)
      if (due > Date.now()) await sleep(due - Date.now())
    }
  } catch (error) {
    if (!own.signal.aborted && !context.signal.aborted) context.ledger.noteUnexpected('tools/call (slow read) broke off', `${(error as Error).message} after ${received} bytes`)
  }
  if (complete && !text.includes('"result"') && !text.includes('"jsonrpc"')) context.ledger.noteUnexpected('tools/call (slow read) without a result', text.slice(0, 160))
  const deleted = await deleteSession(context, session, home)
  if (checkLive(context, session, 'DELETE after a slow read', deleted, [200, 204]) !== 'ok') return
  await probeEnded(context, session, 'DELETE acknowledged after a slow read')
}

/** Leaves a streamed answer after its first event (or, for `wait`, while the upstream still works). */
async function disconnectMidStream (context: ClientContext, random: Random, route: RouteName): Promise<void> {
  const principal = pick(random, PRINCIPALS)
  const home = between(random, 0, context.replicas.length)
  const session = await openSession(context, route, principal, home)
  if (session === undefined) return
  const waitTool = route === 'bridged' && random() < 0.5
  let body: string
  if (route === 'legacy') body = rpc('tools/call', { name: 'stream-two-messages', arguments: { gapMs: between(random, 300, 1500) } })
  else if (waitTool) body = rpc('tools/call', { name: 'wait', arguments: {} })
  else body = rpc('tools/call', { name: 'count', arguments: { n: 10 }, _meta: { progressToken: `p${nextRequestId}` } })
  const own = new AbortController()
  context.ledger.countRequest('tools/call (left mid-stream)')
  const started = Date.now()
  let timer: NodeJS.Timeout | undefined
  if (waitTool) timer = setTimeout(() => { own.abort() }, between(random, 150, 800))
  try {
    const response = await fetch(url(context, home, route), { method: 'POST', headers: mcpHeaders(principal, session.id), body, dispatcher: context.dispatcher, signal: requestSignal(context, own.signal) })
    if (checkLive(context, session, 'tools/call (left mid-stream)', { status: response.status, text: '', sessionId: null, started, finished: Date.now() }) === 'gone') {
      await response.body?.cancel()
      return
    }
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const parser = new SseParser()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      if (parser.push(Buffer.from(value)).length > 0 && !waitTool) {
        own.abort()
        break
      }
    }
  } catch (error) {
    if (!own.signal.aborted && !context.signal.aborted) context.ledger.noteUnexpected('tools/call (left mid-stream) broke off', (error as Error).message)
  } finally {
    clearTimeout(timer)
  }
  if (own.signal.aborted) context.ledger.countFault(FAULTS.disconnect)
  const after = await post(context, session, home, 'tools/list', rpc('tools/list'))
  if (checkLive(context, session, 'tools/list after a client left mid-stream', after) === 'gone') return
  const deleted = await deleteSession(context, session, home)
  if (checkLive(context, session, 'DELETE after a client left mid-stream', deleted, [200, 204]) !== 'ok') return
  await probeEnded(context, session, 'DELETE acknowledged')
}

/** Opens the session's GET stream; `ended` resolves with the time the stream ended. */
async function openGetStream (context: ClientContext, session: Session, own: AbortController): Promise<{ answer: Answer, ended?: Promise<number> }> {
  context.ledger.countRequest('GET stream')
  const started = Date.now()
  try {
    const response = await fetch(url(context, session.home, session.route), {
      method: 'GET',
      headers: { ...mcpHeaders(session.principal, session.id), accept: 'text/event-stream' },
      dispatcher: context.dispatcher,
      signal: AbortSignal.any([context.signal, own.signal])
    })
    const answer: Answer = { status: response.status, text: '', sessionId: null, started, finished: Date.now() }
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel()
      return { answer }
    }
    const reader = response.body.getReader()
    const ended = (async () => {
      try {
        for (;;) if ((await reader.read()).done) break
      } catch {
        // Aborted by the harness, or the connection broke: either way the stream is over.
      }
      return Date.now()
    })()
    return { answer, ended }
  } catch (error) {
    return { answer: { status: 0, text: (error as Error).message, sessionId: null, started, finished: Date.now() } }
  }
}

/** Ends a session on the other replica while its GET stream is open: the stream must end with it. */
async function endUnderStream (context: ClientContext, random: Random, route: RouteName): Promise<void> {
  const principal = pick(random, PRINCIPALS)
  const home = between(random, 0, context.replicas.length)
  const session = await openSession(context, route, principal, home)
  if (session === undefined) return
  const own = new AbortController()
  try {
    const { answer, ended } = await openGetStream(context, session, own)
    if (ended === undefined) {
      checkLive(context, session, 'GET stream', answer)
      return
    }
    const used = await post(context, session, home, 'tools/list', rpc('tools/list'))
    if (checkLive(context, session, 'tools/list with a GET stream open', used) === 'gone') return
    await sleep(between(random, 100, 800))
    const by = random() < 0.5 ? 'client' : 'admin'
    const acknowledged = await endElsewhere(context, session, otherReplica(context, home), by)
    if (acknowledged === undefined) return
    context.ledger.countFault(FAULTS.endUnderStream)
    let timer: NodeJS.Timeout | undefined
    const bound = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), acknowledged + STREAM_END_BOUND_MS - Date.now()) })
    const endedAt = await Promise.race([ended, bound])
    clearTimeout(timer)
    const tally = context.ledger.streams[STREAM_ROUTE[route]]
    if (context.ledger.overlapsOutage(session.created, Date.now())) {
      context.ledger.streamTrialsSkipped++
    } else {
      tally.trials++
      if (endedAt === undefined) tally.outlived++
      else {
        tally.ended++
        tally.delays.push(Math.max(0, endedAt - acknowledged))
      }
    }
    own.abort()
    await probeEnded(context, session, `${by} end acknowledged under an open GET stream`)
  } finally {
    own.abort()
  }
}

export type ScenarioName = 'normal' | 'deleteElsewhere' | 'adminDeleteElsewhere' | 'slowReader' | 'disconnect' | 'endUnderStream'

const WEIGHTS: ReadonlyArray<[ScenarioName, number]> = [
  ['normal', 34], ['deleteElsewhere', 12], ['adminDeleteElsewhere', 10], ['slowReader', 10], ['disconnect', 16], ['endUnderStream', 18]
]

/** Each worker's first scenario, so that even a short run injects every fault on both routes. */
const FIRST: ReadonlyArray<[ScenarioName, RouteName]> = [
  ['endUnderStream', 'legacy'], ['endUnderStream', 'bridged'], ['deleteElsewhere', 'legacy'], ['adminDeleteElsewhere', 'bridged'],
  ['slowReader', 'bridged'], ['disconnect', 'legacy'], ['slowReader', 'legacy'], ['disconnect', 'bridged']
]

function pickScenario (random: Random): ScenarioName {
  const total = WEIGHTS.reduce((sum, [, weight]) => sum + weight, 0)
  let roll = random() * total
  for (const [name, weight] of WEIGHTS) {
    roll -= weight
    if (roll < 0) return name
  }
  return 'normal'
}

async function runScenario (context: ClientContext, random: Random, name: ScenarioName, route: RouteName): Promise<void> {
  switch (name) {
    case 'normal': return await normalClient(context, random, route)
    case 'deleteElsewhere': return await endedWhileInUse(context, random, route, 'client')
    case 'adminDeleteElsewhere': return await endedWhileInUse(context, random, route, 'admin')
    case 'slowReader': return await slowReader(context, random, route)
    case 'disconnect': return await disconnectMidStream(context, random, route)
    case 'endUnderStream': return await endUnderStream(context, random, route)
  }
}

/** One worker: scenarios back to back, from its own seeded sequence, until the deadline. */
export async function runWorker (context: ClientContext, seed: number, index: number): Promise<void> {
  const random = seededRandom(seed + index * 7919)
  let first: [ScenarioName, RouteName] | undefined = FIRST[index % FIRST.length]
  while (Date.now() < context.deadline && !context.signal.aborted) {
    const [name, route] = first ?? [pickScenario(random), random() < 0.5 ? 'legacy' : 'bridged']
    first = undefined
    await runScenario(context, random, name, route)
    await sleep(between(random, 0, 60))
  }
}

/**
 * A burst of initializes on one replica under one new principal; half the time the admin API then
 * ends them all from the other replica (by principal), otherwise they are left to idle expiry.
 */
export async function initializeFlood (context: ClientContext, random: Random, index: number): Promise<void> {
  const principal = `flood-${index}`
  const home = between(random, 0, context.replicas.length)
  const route: RouteName = random() < 0.5 ? 'legacy' : 'bridged'
  const size = between(random, 20, 41)
  context.ledger.countFault(FAULTS.flood)
  const answers = await Promise.all(Array.from({ length: size }, async () =>
    await call(context, 'initialize', url(context, home, route), { method: 'POST', headers: mcpHeaders(principal), body: initializeBody() })))
  const minted: Session[] = []
  for (const answer of answers) {
    if (answer.status === 200 && answer.sessionId !== null) minted.push({ route, principal, id: answer.sessionId, home, created: answer.finished, lastActive: answer.finished })
    else if (!refusedInOutage(context, answer)) context.ledger.noteUnexpected(`initialize in a flood on ${route}`, describe(answer, 'initialize'))
  }
  if (minted.length === 0 || random() < 0.5) return
  const other = otherReplica(context, home)
  const ended = await call(context, 'admin DELETE (by principal)', `${(context.replicas[other] as Replica).origin}/admin/sessions?principal=${principal}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${context.adminToken}` }
  })
  if (ended.status !== 200) {
    if (!refusedInOutage(context, ended)) context.ledger.noteUnexpected('admin DELETE (by principal)', describe(ended, 'admin DELETE'))
    return
  }
  for (const session of minted.slice(0, 3)) await probeEnded(context, session, 'admin end by principal acknowledged')
}
