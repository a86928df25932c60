import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { validateConfig } from '../src/config/validate-config.js'
import { MemorySessionStore } from '../src/sessions/memory-session-store.js'
import { eventually } from './helpers/eventually.js'
import { FakeClock } from './helpers/fake-clock.js'
import { startTestRedis } from './helpers/redis-server.js'
import { freePort } from './helpers/redis-server.js'
import { withGateway, withUpstream, type Teardown } from './helpers/fixtures.js'
import { withOtlpReceiver } from './helpers/otlp-receiver.js'
import { initializeRequest, openSession, post, request } from './helpers/mcp-http.js'

/* Metrics, request ids, tracing (docs/operating.md). */

const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }

/** The value of one sample line of Prometheus text, 0 when absent. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return 0
}

async function metricsOf (origin: string, path = '/metrics'): Promise<string> {
  const answer = await request(`${origin}${path}`, { method: 'GET' })
  if (answer.status !== 200) throw new Error(`metrics: ${answer.status}`)
  return answer.text
}

t.test('metrics: sessions, requests, refusals, upstream and Redis latency, process', async (t) => {
  const redis = await startTestRedis()
  t.teardown(() => redis.close())
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, { config: { redis: { url: redis.url }, admin: { token: 'observability-admin-token' }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  await post(url, toolsList, sessionId)
  await post(url, { jsonrpc: '2.0', id: 3, method: 'x-invented/method' }, sessionId)
  await post(url, toolsList)
  await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId } })
  await post(url, toolsList, sessionId)
  const byAdmin = await openSession(url)
  await request(`${gateway.origin}/admin/sessions/${byAdmin}`, { method: 'DELETE', headers: { authorization: 'Bearer observability-admin-token' } })

  const text = await metricsOf(gateway.origin)
  t.equal(sample(text, 'mcpgw_sessions_created_total', { route: '/mcp' }), 2)
  t.equal(sample(text, 'mcpgw_sessions_terminated_total', { reason: 'delete' }), 1)
  t.equal(sample(text, 'mcpgw_sessions_terminated_total', { reason: 'admin' }), 1)
  t.equal(sample(text, 'mcpgw_requests_total', { route: '/mcp', status: '200', rpc_method: 'tools/list' }), 1)
  t.equal(sample(text, 'mcpgw_requests_total', { route: '/mcp', rpc_method: 'other' }), 1, 'client-invented methods do not create label values')
  t.equal(sample(text, 'mcpgw_refusals_total', { status: '400', cause: 'MCPGW_SESSION_ID_REQUIRED' }), 1)
  t.equal(sample(text, 'mcpgw_refusals_total', { status: '404', cause: 'MCPGW_SESSION_NOT_FOUND' }), 1)
  t.equal(sample(text, 'mcpgw_upstream_duration_seconds_count', { route: '/mcp' }), 4, 'two initializes and two forwarded calls')
  t.equal(sample(text, 'mcpgw_redis_duration_seconds_count', { operation: 'touch', outcome: 'ok' }), 3, 'one Redis round trip per session request')
  t.equal(sample(text, 'mcpgw_redis_duration_seconds_count', { operation: 'create', outcome: 'ok' }), 2)
  t.ok(sample(text, 'process_cpu_user_seconds_total') > 0, 'default process metrics')

  await redis.stop()
  await post(`${gateway.origin}/mcp`, toolsList, await Promise.resolve('x'.repeat(32) + '.abcdefgh'))
  const failing = await post(url, initializeRequest(9))
  t.equal(failing.status, 503)
  const after = await metricsOf(gateway.origin)
  t.ok(sample(after, 'mcpgw_redis_duration_seconds_count', { operation: 'create', outcome: 'error' }) >= 1, 'failed round trips are counted as errors')
})

t.test('metrics on their own port', async (t) => {
  const metricsPort = await freePort()
  const gateway = await withGateway(t, { config: { metrics: { port: metricsPort, path: '/prometheus' }, routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:1/mcp' }] } })
  t.equal((await request(`${gateway.origin}/prometheus`, { method: 'GET' })).status, 404, 'not on the listen port')
  t.equal((await request(`http://127.0.0.1:${metricsPort}/prometheus`, { method: 'GET' })).status, 200, 'on the metrics port')
})

t.test('upstream errors are counted by kind', async (t) => {
  const metricsPort = await freePort()
  const deadPort = await freePort()
  const gateway = await withGateway(t, { config: { metrics: { port: metricsPort, path: '/prometheus' }, routes: [{ path: '/mcp', upstream: `http://127.0.0.1:${deadPort}/mcp` }] } })
  t.equal((await post(`${gateway.origin}/mcp`, initializeRequest(1))).status, 502)
  const text = await metricsOf(`http://127.0.0.1:${metricsPort}`, '/prometheus')
  t.equal(sample(text, 'mcpgw_upstream_errors_total', { route: '/mcp', kind: 'unreachable' }), 1)
})

for (const kind of ['memory', 'redis'] as const) {
  t.test(`${kind} store: idle and lifetime expiries are counted, once across replicas`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'json' })
    // Memory: one gateway on a fake clock the test moves. Redis: two replicas on real TTLs, counting
    // from the keyspace events Redis publishes.
    const redis = kind === 'redis' ? await startTestRedis({ args: ['--notify-keyspace-events', 'Ex', '--hz', '50'] }) : undefined
    if (redis !== undefined) t.teardown(() => redis.close())
    const config = { ...(redis === undefined ? {} : { redis: { url: redis.url } }), sessions: { idleTimeout: '1s', maxLifetime: '2500ms' }, routes: [{ path: '/mcp', upstream: upstream.url }] }
    const clock = new FakeClock()
    const store = redis === undefined ? new MemorySessionStore(validateConfig(config).sessions, clock.now) : undefined
    if (store !== undefined) t.teardown(() => store.close())
    const first = await withGateway(t, { config, ...(store === undefined ? {} : { store }) })
    const second = kind === 'redis' ? await withGateway(t, { config }) : first
    const idle = await openSession(`${first.origin}/mcp`)
    const active = await openSession(`${first.origin}/mcp`)
    // Used every 100 ms of fake time, or as often as a busy machine allows with Redis (a gap longer
    // than the idle timeout would end it as idle), until its lifetime ends.
    await eventually(async () => {
      clock.advance(100)
      return (await post(`${second.origin}/mcp`, toolsList, active)).status === 404
    }, { timeout: 10_000, interval: store === undefined ? 0 : 20, description: 'the active session to reach its 2500 ms lifetime' })
    // The memory store notices expiry when a session is looked up (or swept).
    if (kind === 'memory') await post(`${first.origin}/mcp`, toolsList, idle)
    let firstText = ''
    let secondText = ''
    const total = (reason: string): number => sample(firstText, 'mcpgw_sessions_terminated_total', { reason }) + (kind === 'redis' ? sample(secondText, 'mcpgw_sessions_terminated_total', { reason }) : 0)
    const readMetrics = async (): Promise<void> => {
      firstText = await metricsOf(first.origin)
      secondText = kind === 'redis' ? await metricsOf(second.origin) : ''
    }
    await eventually(async () => {
      await readMetrics()
      return total('idle') >= 1 && total('lifetime') >= 1
    }, { timeout: 10_000, interval: 50, description: 'both expiries to be counted' }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message} (idle ${total('idle')}, lifetime ${total('lifetime')})`)
    })
    if (kind === 'redis') {
      // A fixed sleep on purpose: both replicas hear every expiry event, and the one that loses the
      // SET NX must count nothing. Proving that nothing more is counted takes a quiet period.
      await sleep(500)
      await readMetrics()
    }
    t.equal(total('idle'), 1, 'the untouched session: idle')
    t.equal(total('lifetime'), 1, 'the active session: lifetime')
  })
}

t.test('request ids: in, out, to the upstream, in the log line', async (t) => {
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const given = await post(`${gateway.origin}/mcp`, initializeRequest(1), undefined, { 'x-request-id': 'req-from-client-42' })
  t.equal(given.headers.get('x-request-id'), 'req-from-client-42')
  t.equal(upstream.received.at(-1)?.headers['x-request-id'], 'req-from-client-42', 'forwarded to the upstream')
  t.ok(gateway.logs.some((line) => line.reqId === 'req-from-client-42' && line.msg === 'request completed'), 'in the log line')
  const generated = await post(`${gateway.origin}/mcp`, initializeRequest(2))
  t.match(generated.headers.get('x-request-id'), /^[0-9a-f]{8}-[0-9a-z]+$/, 'generated when absent')
  t.equal(upstream.received.at(-1)?.headers['x-request-id'], generated.headers.get('x-request-id'))
  const hostile = await post(`${gateway.origin}/mcp`, initializeRequest(3), undefined, { 'x-request-id': 'x'.repeat(500) })
  t.match(hostile.headers.get('x-request-id'), /^[0-9a-f]{8}-[0-9a-z]+$/, 'an unusable incoming id is replaced')
  t.not(hostile.headers.get('x-request-id'), generated.headers.get('x-request-id'), 'unique')
})


t.test('tracing: a span per request, continuing the caller\'s traceparent and passing it upstream', async (t) => {
  const receiver = await withOtlpReceiver(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, { config: { tracing: { otlpEndpoint: receiver.url }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const callerSpan = '00f067aa0ba902b7'
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1), undefined, { traceparent: `00-${traceId}-${callerSpan}-01` })
  t.equal(answer.status, 200)
  const upstreamTraceparent = upstream.received.at(-1)?.headers.traceparent as string
  t.match(upstreamTraceparent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`), 'the upstream joins the same trace')
  t.not(upstreamTraceparent.split('-')[2], callerSpan, 'as a child of the gateway span')
  await gateway.close()
  const span = receiver.spans.find((candidate) => candidate.traceId === traceId)
  t.ok(span !== undefined, 'the span was exported over OTLP')
  t.equal(span?.parentSpanId, callerSpan)
  t.equal(span?.name, 'POST /mcp')
  t.match(span?.attributes, { 'http.route': '/mcp', 'mcp.method': 'initialize', 'mcp.session.outcome': 'session created', 'http.response.status_code': 200, 'mcp.era': 'legacy' })
  t.type(span?.attributes['mcp.upstream.duration_ms'], 'number')
  t.equal(upstreamTraceparent.split('-')[2], span?.spanId, "the upstream's parent is the gateway's span")
})

t.test('the Grafana dashboard queries only metrics the gateway exports', async (t) => {
  const { readFile } = await import('node:fs/promises')
  const { createGatewayMetrics } = await import('../src/observability/metrics.js')
  const dashboard = JSON.parse(await readFile('deploy/grafana/mcp-session-gateway.json', 'utf8')) as { panels: Array<{ title: string, targets: Array<{ expr: string }> }> }
  const exported = new Set((await createGatewayMetrics().registry.getMetricsAsJSON()).map((metric) => metric.name))
  const used = new Set<string>()
  for (const panel of dashboard.panels) {
    for (const target of panel.targets) {
      for (const match of target.expr.matchAll(/\b((?:mcpgw|process|nodejs)_[a-z0-9_]+)/g)) used.add((match[1] as string).replace(/_(bucket|count|sum)$/, ''))
    }
  }
  t.ok(used.size >= 8, `the dashboard uses ${used.size} metrics`)
  for (const name of used) t.ok(exported.has(name), `${name} is exported`)
  t.ok(dashboard.panels.length >= 8)
})
