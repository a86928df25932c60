import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { openSession, post } from './helpers/mcp-http.js'
import type { TestRedis } from './helpers/redis-server.js'

/* Issue #2 rule 4 over HTTP: idle timeout (sliding) and max lifetime end a session; afterwards 404. */

const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

for (const kind of storeKinds) {
  t.test(`${kind} store: requests slide the idle timeout; silence ends the session`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'json' })
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis, `idle-${kind}:`), sessions: { idleTimeout: '600ms', maxLifetime: '1h' }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
    const url = `${gateway.origin}/mcp`
    const active = await openSession(url)
    const idle = await openSession(url)
    for (let step = 0; step < 5; step++) {
      await sleep(250)
      t.equal((await post(url, toolsList, active)).status, 200, `active session live at ${(step + 1) * 250} ms`)
    }
    const expired = await post(url, toolsList, idle)
    t.equal(expired.status, 404, 'idle session ended after 1250 ms > 600 ms')
    t.same(JSON.parse(expired.text), { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } })
  })

  t.test(`${kind} store: max lifetime ends an active session`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'json' })
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis, `life-${kind}:`), sessions: { idleTimeout: '1h', maxLifetime: '700ms' }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
    const url = `${gateway.origin}/mcp`
    const sessionId = await openSession(url)
    t.equal((await post(url, toolsList, sessionId)).status, 200)
    await sleep(300)
    t.equal((await post(url, toolsList, sessionId)).status, 200)
    await sleep(600)
    t.equal((await post(url, toolsList, sessionId)).status, 404, 'ended 900 ms after creation with a 700 ms lifetime')
  })
}
