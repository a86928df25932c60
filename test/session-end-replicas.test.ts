import t from 'tap'
import { hashPrincipal } from '../src/security/principal.js'
import { sessionKey } from '../src/sessions/redis-keys.js'
import { SseParser } from '../src/mcp/sse-parser.js'
import { withGateway, type Teardown } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, LATEST_LEGACY_VERSION } from './helpers/mcp-http.js'
import { startModernUpstream, type ModernUpstream } from './helpers/modern-upstream.js'
import { startTestRedis, type TestRedis } from './helpers/redis-server.js'

/*
 * Every way a session ends reaches the streams other replicas hold for it (docs/architecture.md,
 * "How a session ends"). Two gateway replicas on one real Redis, an `auto` route in front of a
 * modern-only upstream: replica A answered the initialize (so it has probed the upstream) and holds
 * the session's bridged GET stream; replica B has never probed the route and only sees the end.
 */

const ADMIN_TOKEN = 'admin-token-0123456789'
const API_KEY = 'key-of-alice'

async function withRedisEvents (t: Teardown): Promise<TestRedis> {
  // Expiry reaches the gateways through keyspace events, as docs/operating.md tells operators to configure.
  const redis = await startTestRedis({ args: ['--notify-keyspace-events', 'Ex'] })
  t.teardown(() => redis.close())
  return redis
}

async function withModernUpstream (t: Teardown): Promise<ModernUpstream> {
  const upstream = await startModernUpstream('reject')
  t.teardown(() => upstream.close())
  return upstream
}

async function twoReplicas (t: Teardown, redis: TestRedis, upstream: ModernUpstream, prefix: string, sessions: Record<string, unknown> = {}): Promise<[TestGateway, TestGateway]> {
  const config = {
    redis: { url: redis.url, keyPrefix: prefix },
    admin: { token: ADMIN_TOKEN },
    sessions: { binding: { header: 'x-api-key' }, ...sessions },
    routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'auto', getStream: 'forward' }]
  }
  return [await withGateway(t, { config }), await withGateway(t, { config })]
}

const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': LATEST_LEGACY_VERSION, 'x-api-key': API_KEY }

async function initializeOn (gateway: TestGateway): Promise<string> {
  const response = await fetch(`${gateway.origin}/mcp`, { method: 'POST', headers, body: JSON.stringify(initializeRequest()) })
  await response.text()
  const sessionId = response.headers.get('mcp-session-id')
  if (response.status !== 200 || sessionId === null) throw new Error(`initialize failed: ${response.status}`)
  return sessionId
}

/** Opens the session's GET stream and resolves once the gateway has opened it; `ended` settles when it ends. */
async function openStream (gateway: TestGateway, sessionId: string): Promise<{ ended: Promise<'ended'> }> {
  const response = await fetch(`${gateway.origin}/mcp`, { headers: { ...headers, accept: 'text/event-stream', 'mcp-session-id': sessionId } })
  if (response.status !== 200 || response.body === null) throw new Error(`GET stream refused: ${response.status}`)
  const reader = response.body.getReader()
  const parser = new SseParser()
  const ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return 'ended' as const
      parser.push(Buffer.from(value))
    }
  })()
  return { ended }
}

/** The stream's end, or 'still open' after `ms`: a bound on the wait, not a pause. */
async function endWithin (stream: { ended: Promise<'ended'> }, ms: number): Promise<'ended' | 'still open'> {
  let timer: NodeJS.Timeout | undefined
  const open = new Promise<'still open'>((resolve) => { timer = setTimeout(() => { resolve('still open') }, ms) })
  try {
    return await Promise.race([stream.ended, open])
  } finally {
    clearTimeout(timer)
  }
}

t.test('a DELETE on a replica that never probed the route ends the stream another replica holds', async (t) => {
  const redis = await withRedisEvents(t)
  const upstream = await withModernUpstream(t)
  const [a, b] = await twoReplicas(t, redis, upstream, 'end-delete:')
  const sessionId = await initializeOn(a)
  const stream = await openStream(a, sessionId)
  const deleted = await fetch(`${b.origin}/mcp`, { method: 'DELETE', headers: { ...headers, 'mcp-session-id': sessionId } })
  t.equal(deleted.status, 204)
  t.equal(await endWithin(stream, 5_000), 'ended', 'the stream on A ended with the session')
})

t.test('an admin DELETE of one session ends its stream on another replica', async (t) => {
  const redis = await withRedisEvents(t)
  const upstream = await withModernUpstream(t)
  const [a, b] = await twoReplicas(t, redis, upstream, 'end-admin:')
  const sessionId = await initializeOn(a)
  const stream = await openStream(a, sessionId)
  const deleted = await fetch(`${b.origin}/admin/sessions/${sessionId}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(deleted.status, 204)
  t.equal(await endWithin(stream, 5_000), 'ended', 'the stream on A ended with the session')
  t.match(await (await fetch(`${b.origin}/metrics`)).text(), /mcpgw_sessions_terminated_total\{reason="admin"\} 1/, 'counted once, as an admin end')
})

t.test('an admin delete-by-principal ends every stream of that principal on another replica', async (t) => {
  const redis = await withRedisEvents(t)
  const upstream = await withModernUpstream(t)
  const [a, b] = await twoReplicas(t, redis, upstream, 'end-principal:')
  const first = await openStream(a, await initializeOn(a))
  const second = await openStream(a, await initializeOn(a))
  const deleted = await fetch(`${b.origin}/admin/sessions?principal=${API_KEY}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.same(await deleted.json(), { terminated: 2 })
  t.equal(await endWithin(first, 5_000), 'ended', 'the first stream ended')
  t.equal(await endWithin(second, 5_000), 'ended', 'the second stream ended')
})

t.test('an expiry in Redis ends the stream', async (t) => {
  const redis = await withRedisEvents(t)
  const upstream = await withModernUpstream(t)
  const [a] = await twoReplicas(t, redis, upstream, 'end-idle:')
  const sessionId = await initializeOn(a)
  const stream = await openStream(a, sessionId)
  // An open stream slides its session's idle timeout: Redis expires the key itself here, as it does
  // at the timeout, whichever replica then hears of it.
  t.equal(await redis.client().pexpire(sessionKey('end-idle:', sessionId, hashPrincipal('header', API_KEY)), 1), 1)
  t.equal(await endWithin(stream, 10_000), 'ended', 'the stream ended when Redis expired the session')
  const after = await fetch(`${a.origin}/mcp`, { method: 'POST', headers: { ...headers, 'mcp-session-id': sessionId }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }) })
  t.equal(after.status, 404)
})
