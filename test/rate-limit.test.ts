import t from 'tap'
import { withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'

/* limits.initializePerMinute (docs/configuration.md), counted in Redis so that every replica shares it. */

t.test('initialize over the limit gets 429 with Retry-After, on every replica', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const config = { redis: { url: redis.url, keyPrefix: 'rate:' }, limits: { initializePerMinute: 3 }, routes: [{ path: '/mcp', upstream: upstream.url }] }
  const first = await withGateway(t, { config })
  const second = await withGateway(t, { config })
  const statuses = []
  for (const gateway of [first, second, first]) statuses.push((await post(`${gateway.origin}/mcp`, initializeRequest(1))).status)
  t.same(statuses, [200, 200, 200])
  const refused = await post(`${second.origin}/mcp`, initializeRequest(7))
  t.equal(refused.status, 429, 'the fourth initialize from this address, on the other replica')
  t.equal(refused.headers.get('mcp-session-id'), null)
  const retryAfter = Number(refused.headers.get('retry-after'))
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`)
  t.match(JSON.parse(refused.text), { id: 7, error: { message: /initializePerMinute/ } })
})

t.test('with a binding a principal is limited whatever address it comes from', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, { config: { listen: { host: '127.0.0.1', port: 0, trustProxy: true }, redis: { url: redis.url, keyPrefix: 'rate-principal:' }, sessions: { binding: { header: 'x-api-key' } }, limits: { initializePerMinute: 2 }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`
  const as = async (key: string, address: string): Promise<number> => (await post(url, initializeRequest(1), undefined, { 'x-api-key': key, 'x-forwarded-for': address })).status
  t.same([await as('a', '10.0.0.1'), await as('a', '10.0.0.2'), await as('a', '10.0.0.3')], [200, 200, 429], 'per principal')
  t.same([await as('b', '10.0.0.4'), await as('b', '10.0.0.5')], [200, 200], 'another principal has its own count')
})
