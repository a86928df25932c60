import t from 'tap'
import { withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { openSession, post, request } from './helpers/mcp-http.js'

/*
 * Two gateway instances on one Redis share sessions; a DELETE on one is a 404 on the other at once
 * (docs/scaling.md).
 */

const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }

t.test('two instances share sessions through Redis', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t)
  const config = { redis: { url: redis.url, keyPrefix: 'shared:' }, routes: [{ path: '/mcp', upstream: upstream.url }] }
  const first = await withGateway(t, { config })
  const second = await withGateway(t, { config })

  const sessionId = await openSession(`${first.origin}/mcp`)
  t.equal((await post(`${second.origin}/mcp`, toolsList, sessionId)).status, 200, 'created on the first, served by the second')

  for (let round = 0; round < 20; round++) {
    const created = await openSession(`${round % 2 === 0 ? first.origin : second.origin}/mcp`)
    const deleter = round % 2 === 0 ? second : first
    const other = round % 2 === 0 ? first : second
    t.equal((await request(`${deleter.origin}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': created } })).status, 204)
    // No wait between the DELETE and the next request: "at once".
    t.equal((await post(`${other.origin}/mcp`, toolsList, created)).status, 404, `round ${round}: deleted on one, 404 on the other immediately`)
  }
  t.equal((await post(`${first.origin}/mcp`, toolsList, sessionId)).status, 200, 'unrelated sessions untouched')
})

t.test('a restarted gateway keeps every session (they live in Redis)', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t)
  const config = { redis: { url: redis.url, keyPrefix: 'restart:' }, routes: [{ path: '/mcp', upstream: upstream.url }] }
  const before = await withGateway(t, { config })
  const sessions = await Promise.all(Array.from({ length: 5 }, async () => await openSession(`${before.origin}/mcp`)))
  await before.close()
  const after = await withGateway(t, { config })
  for (const sessionId of sessions) t.equal((await post(`${after.origin}/mcp`, toolsList, sessionId)).status, 200, 'served after the restart')
})
