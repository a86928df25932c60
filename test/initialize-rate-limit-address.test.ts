import t from 'tap'
import { withGateway, withRedis } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import { withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * limits.initializePerMinute counts per client address as well as per principal (docs/security.md,
 * "Limits"; docs/configuration.md): with a header binding the principal is a value the client
 * chooses, so a client that sends a new key on every initialize is limited by its address.
 */

t.test('a new x-api-key on every initialize does not dodge the limit (real Redis)', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t)
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'rate-address:' },
      sessions: { binding: { header: 'x-api-key' } },
      limits: { initializePerMinute: 2 },
      routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }]
    }
  })
  const url = `${gateway.origin}/mcp`
  const statuses: number[] = []
  let last
  for (let attempt = 1; attempt <= 3; attempt++) {
    last = await post(url, initializeRequest(attempt), undefined, { 'x-api-key': `key-${attempt}-${Math.random()}` })
    statuses.push(last.status)
  }
  t.same(statuses, [200, 200, 429], 'the third from the same address is refused')
  t.match(last?.headers.get('retry-after'), /^[1-9]\d*$/, 'with Retry-After')
  t.match(JSON.parse(last?.text ?? '{}'), { error: { message: /initializePerMinute/ } })
  t.equal(upstream.received.length, 2, 'the refused initialize never reached the upstream')
})
