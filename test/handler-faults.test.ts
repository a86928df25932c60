import t from 'tap'
import type { Redis } from 'ioredis'
import { HANDLER_STEPS, type HandlerStep } from '../src/proxy/handler-steps.js'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, post, request } from './helpers/mcp-http.js'
import { total } from './helpers/metrics.js'
import { startModernUpstream } from './helpers/modern-upstream.js'
import { lastId, openStream, type OpenStream } from './helpers/sse-stream.js'
import { startStatefulUpstream } from './helpers/stateful-upstream.js'
import { withStreamingUpstream, type StreamingUpstream } from './helpers/streaming-upstream.js'

/*
 * Whatever fails, a handler gives back what it took (docs/architecture.md, "Resources"): a fault is
 * injected at each step of each handler (src/proxy/handler-steps.ts), on every route kind, against
 * real upstreams and a real Redis. After each: the request was answered, no upstream request, Redis
 * subscription, running stream or stream guard (its timers and listeners, mcpgw_replica_listeners)
 * is left, and the session idles out on time (a guard left behind would keep touching it).
 */

const VERSION = '2025-11-25'
const WAIT = { timeout: 15_000 }
const IDLE_TIMEOUT = '1s'

let armed: HandlerStep | undefined
const hits = new Set<HandlerStep>()
function checkpoint (step: HandlerStep): void {
  if (step !== armed) return
  armed = undefined
  hits.add(step)
  throw new Error(`a fault injected at "${step}"`)
}

interface Route {
  readonly gateway: TestGateway
  readonly url: string
  /** Upstream requests still being answered, where the upstream can tell. */
  readonly upstreamOpen: () => number
}

async function headersOf (route: Route): Promise<Record<string, string>> {
  const answer = await post(route.url, initializeRequest(1, VERSION))
  const sessionId = answer.headers.get('mcp-session-id')
  if (sessionId === null) throw new Error(`no session: ${answer.status} ${answer.text}`)
  return { 'mcp-session-id': sessionId, 'mcp-protocol-version': VERSION, accept: 'application/json, text/event-stream', 'content-type': 'application/json' }
}

/**
 * Reads a request's answer to its end (or for `ms` at most: a stream that goes on is cut), never
 * hangs. 0: the gateway closed the connection (a fault after a stream's head left: the client notices).
 */
async function answered (url: string, init: RequestInit, ms = 3000): Promise<number> {
  let stream: OpenStream
  try {
    stream = await openStream(url, { ...init, signal: AbortSignal.timeout(10_000) })
  } catch {
    return 0
  }
  await Promise.race([stream.ended, new Promise((resolve) => setTimeout(resolve, ms))])
  stream.cut()
  return stream.status
}

/** Streams this replica writes, and what it listens for (stream guards among them): 0 when nothing is held. */
async function held (gateway: TestGateway): Promise<number> {
  const text = (await request(`${gateway.origin}/metrics`, { method: 'GET' })).text
  return total(text, 'mcpgw_streams_running') + total(text, 'mcpgw_replica_listeners')
}

t.test('a fault at every handler step leaves nothing behind', async (t) => {
  const redis = await withRedis(t)
  const inspector: Redis = redis.client()
  const streaming: StreamingUpstream = await withStreamingUpstream(t)
  const modern = await startModernUpstream('reject')
  t.teardown(() => modern.close())
  const stateful = await startStatefulUpstream({ name: 'faults' })
  t.teardown(() => stateful.close())
  const config = (prefix: string, route: Record<string, unknown>): Record<string, unknown> => ({
    redis: { url: redis.url, keyPrefix: prefix },
    sessions: { idleTimeout: IDLE_TIMEOUT },
    routes: [{ path: '/mcp', getStream: 'forward', ...route }]
  })
  const start = async (prefix: string, route: Record<string, unknown>, upstreamOpen: () => number): Promise<Route> => {
    const gateway = await withGateway(t, { config: config(prefix, route), checkpoint })
    return { gateway, url: `${gateway.origin}/mcp`, upstreamOpen }
  }
  const forwarded = await start('faults-forwarded:', { upstream: streaming.url, upstreamEra: 'legacy' }, () => streaming.open())
  const bridged = await start('faults-bridged:', { upstream: modern.url, upstreamEra: 'modern' }, () => 0)
  const statefulRoute = await start('faults-stateful:', { upstream: [stateful.url], upstreamSessions: true }, () => 0)

  const streamedCall = (id: number): string => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'stream', arguments: { events: 5, gapMs: 100 } } })
  /** How each step is reached: the route, and the request to send once the session exists. */
  const scenarios: Record<HandlerStep, { route: Route, send: (route: Route, headers: Record<string, string>) => Promise<unknown> }> = {
    'initialize: answered': { route: forwarded, send: async (route) => await post(route.url, initializeRequest(2, VERSION)) },
    'initialize: minted': { route: forwarded, send: async (route) => await post(route.url, initializeRequest(2, VERSION)) },
    'forwarded post: cancellations relayed': { route: forwarded, send: async (route, headers) => await answered(route.url, { method: 'POST', headers, body: streamedCall(3) }) },
    'forwarded post: stream started': { route: forwarded, send: async (route, headers) => await answered(route.url, { method: 'POST', headers, body: streamedCall(3) }) },
    'forwarded get: guarded': { route: forwarded, send: async (route, headers) => await answered(route.url, { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } }, 1000) },
    'forwarded get: opened': { route: forwarded, send: async (route, headers) => await answered(route.url, { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } }, 1000) },
    'forwarded get: stream started': { route: forwarded, send: async (route, headers) => await answered(route.url, { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } }, 1000) },
    'resume: guarded': { route: forwarded, send: resumeWithFault },
    'resume: replayed': { route: forwarded, send: resumeWithFault },
    'bridged post: reply made': { route: bridged, send: async (route, headers) => await answered(route.url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'count', arguments: { n: 3 } } }) }) },
    'bridged get: stream opened': { route: bridged, send: async (route, headers) => await answered(route.url, { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } }, 1000) },
    'stateful post: in flight': { route: statefulRoute, send: async (route, headers) => await answered(route.url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'slow', arguments: { ms: 300 }, _meta: { progressToken: 'p' } } }) }) },
    'stateful post: answered': { route: statefulRoute, send: async (route, headers) => await answered(route.url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'slow', arguments: { ms: 300 }, _meta: { progressToken: 'p' } } }) }) },
    'stateful get: opened': { route: statefulRoute, send: async (route, headers) => await answered(route.url, { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } }, 1000) }
  }

  /** A streamed call read for two events and cut (a stream kept to resume), then resumed with the fault armed. */
  async function resumeWithFault (route: Route, headers: Record<string, string>): Promise<unknown> {
    const step = armed
    armed = undefined
    const first: OpenStream = await openStream(route.url, { method: 'POST', headers, body: streamedCall(6) })
    await first.waitFor(2)
    first.cut()
    armed = step
    return await answered(route.url, { method: 'GET', headers: { ...headers, accept: 'text/event-stream', 'last-event-id': lastId(first) } })
  }

  t.same(Object.keys(scenarios).sort(), [...HANDLER_STEPS].sort(), 'every step has its scenario')
  for (const step of HANDLER_STEPS) {
    await t.test(step, async (t) => {
      const { route, send } = scenarios[step]
      const headers = await headersOf(route)
      const sessionId = headers['mcp-session-id'] as string
      await eventually(async () => route.upstreamOpen() === 0 && await held(route.gateway) === 0, { ...WAIT, description: 'a quiet start' })
      const channelsBefore = (await inspector.pubsub('CHANNELS')).length
      armed = step
      await send(route, headers)
      t.ok(hits.has(step), 'the fault was injected')
      t.equal((await fetch(`${route.gateway.origin}/healthz`)).status, 200, 'the process serves')
      await eventually(() => route.upstreamOpen() === 0, { ...WAIT, description: 'no upstream request left open' })
      await eventually(async () => await held(route.gateway) === 0, { ...WAIT, description: 'no stream, stream guard or listener left' })
      await eventually(async () => (await inspector.pubsub('CHANNELS')).length <= channelsBefore, { ...WAIT, description: 'no Redis subscription left' })
      // Read without sliding it: a guard left behind would keep it alive.
      await eventually(async () => await route.gateway.app.sessionStore.get(sessionId) === null, { ...WAIT, interval: 200, description: 'the session to idle out' })
      t.pass('nothing left, and the session idled out on time')
    })
  }
})
