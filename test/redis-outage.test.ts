import t from 'tap'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, openSession, post, request } from './helpers/mcp-http.js'

/* Redis down: 503 with a JSON-RPC error, never an unchecked forward, then recovery without a restart. */

const toolsList = { jsonrpc: '2.0', id: 4, method: 'tools/list' }

/** Whether an initialize succeeds within 15 s (of a Redis restart). */
async function initializeSucceeds (url: string, id: number): Promise<boolean> {
  return await eventually(async () => (await post(url, initializeRequest(id))).status === 200, { timeout: 15_000, interval: 100, description: 'an initialize to succeed' })
}

t.test('503 while Redis is away, recovery when it returns', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, commandTimeout: '500ms' }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  t.equal((await request(`${gateway.origin}/readyz`, { method: 'GET' })).status, 200)

  await redis.stop()
  const forwardedBefore = upstream.received.length
  const during = await post(url, toolsList, sessionId)
  t.equal(during.status, 503)
  t.same(JSON.parse(during.text), { jsonrpc: '2.0', id: 4, error: { code: -32603, message: 'Service Unavailable: the session store cannot be reached; retry later' } })
  const initialize = await post(url, initializeRequest(5))
  t.equal(initialize.headers.get('mcp-session-id'), null, 'initialize during the outage mints nothing')
  t.equal(initialize.status, 503)
  t.equal((await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId } })).status, 503)
  t.equal(upstream.received.length - forwardedBefore, 1, 'only the initialize reached the upstream; no session request was forwarded unchecked')
  t.equal((await request(`${gateway.origin}/readyz`, { method: 'GET' })).status, 503, 'not ready')
  t.equal((await request(`${gateway.origin}/healthz`, { method: 'GET' })).status, 200, 'still alive')

  // The test Redis keeps nothing on disk: after a restart the old session is gone (404), new ones work.
  await redis.start()
  t.ok(await initializeSucceeds(url, 6), 'recovered without a gateway restart')
  t.equal((await post(url, toolsList, sessionId)).status, 404)
  t.equal((await request(`${gateway.origin}/readyz`, { method: 'GET' })).status, 200)
})

t.test('a gateway started while Redis is down starts, answers 503, and recovers', async (t) => {
  const redis = await withRedis(t)
  await redis.stop()
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, connectTimeout: '300ms', commandTimeout: '300ms' }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  t.ok(gateway.logs.some((line) => line.msg === 'session store not reachable yet: answering 503 until it is'), 'warned at start-up')
  t.equal((await post(`${gateway.origin}/mcp`, initializeRequest(1))).status, 503)
  await redis.start()
  t.ok(await initializeSucceeds(`${gateway.origin}/mcp`, 2), 'recovered')
})
