import t from 'tap'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, post, request } from './helpers/mcp-http.js'
import type { TestRedis } from './helpers/redis-server.js'
import { mintSessionId } from '../src/sessions/session-id.js'

/* The admin API (docs/operating.md). */

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789'
const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

t.test('without admin.token the admin API does not exist', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const answer = await request(`${gateway.origin}/admin/sessions`, { method: 'GET', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  t.equal(answer.status, 404)
})

for (const kind of storeKinds) {
  t.test(`${kind} store: list, get, terminate, terminate a principal`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'json' })
    const gateway = await withGateway(t, {
      config: { ...redisSection(kind, redis, `admin-${kind}:`), admin: { token: ADMIN_TOKEN }, sessions: { binding: { header: 'x-user' } }, routes: [{ path: '/mcp', upstream: upstream.url }] }
    })
    const url = `${gateway.origin}/mcp`
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
    const open = async (user: string): Promise<string> => (await post(url, initializeRequest(1), undefined, { 'x-user': user })).headers.get('mcp-session-id') as string

    const wrongCredentials: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong-token-wrong-token' }, { authorization: ADMIN_TOKEN }]
    for (const headers of wrongCredentials) {
      const refused = await request(`${gateway.origin}/admin/sessions`, { method: 'GET', headers })
      t.equal(refused.status, 401, `refused: ${JSON.stringify(headers)}`)
      t.match(refused.headers.get('www-authenticate'), /^Bearer/)
    }

    const alice = [await open('alice'), await open('alice'), await open('alice')]
    const bob = await open('bob')

    const seen = new Set<string>()
    let cursor: string | null = null
    let pages = 0
    do {
      const query: string = cursor === null ? '?limit=2' : `?limit=2&cursor=${encodeURIComponent(cursor)}`
      const page = JSON.parse((await request(`${gateway.origin}/admin/sessions${query}`, { method: 'GET', headers: admin })).text) as { sessions: Array<{ id: string }>, nextCursor: string | null }
      for (const session of page.sessions) seen.add(session.id)
      cursor = page.nextCursor
      pages++
    } while (cursor !== null && pages < 20)
    t.ok([...alice, bob].every((id) => seen.has(id)), 'paginated listing covers every session')

    const aliceOnly = JSON.parse((await request(`${gateway.origin}/admin/sessions?principal=alice`, { method: 'GET', headers: admin })).text) as { sessions: Array<{ id: string, principal: string, route: string }> }
    t.same(aliceOnly.sessions.map((session) => session.id).sort(), [...alice].sort(), 'filter by principal')
    t.ok(aliceOnly.sessions.every((session) => session.route === '/mcp' && session.principal.length === 24), 'principals are shown hashed')
    const byRoute = JSON.parse((await request(`${gateway.origin}/admin/sessions?route=/nope`, { method: 'GET', headers: admin })).text) as { sessions: unknown[] }
    t.same(byRoute.sessions, [], 'filter by route')

    const one = await request(`${gateway.origin}/admin/sessions/${bob}`, { method: 'GET', headers: admin })
    t.equal(one.status, 200)
    t.match(JSON.parse(one.text), { id: bob, route: '/mcp', protocolVersion: '2025-11-25', clientInfo: { name: 'gateway-test' }, createdAt: /^\d{4}-/ })
    t.equal((await request(`${gateway.origin}/admin/sessions/${mintSessionId()}`, { method: 'GET', headers: admin })).status, 404, 'an unknown id: 404')

    t.equal((await request(`${gateway.origin}/admin/sessions/${bob}`, { method: 'DELETE', headers: admin })).status, 204)
    t.equal((await post(url, toolsList, bob, { 'x-user': 'bob' })).status, 404, 'the client then gets 404')
    t.equal((await request(`${gateway.origin}/admin/sessions/${bob}`, { method: 'DELETE', headers: admin })).status, 404)

    const ended = await request(`${gateway.origin}/admin/sessions?principal=alice`, { method: 'DELETE', headers: admin })
    t.same(JSON.parse(ended.text), { terminated: 3 })
    for (const id of alice) t.equal((await post(url, toolsList, id, { 'x-user': 'alice' })).status, 404)
    t.equal((await request(`${gateway.origin}/admin/sessions`, { method: 'DELETE', headers: admin })).status, 400, 'DELETE without ?principal is refused')
    t.equal((await request(`${gateway.origin}/admin/sessions?limit=0`, { method: 'GET', headers: admin })).status, 400)

    t.notMatch(gateway.rawLogs.join('\n'), ADMIN_TOKEN, 'the admin token is never logged')
    t.notMatch(gateway.rawLogs.join('\n'), bob, 'nor a full session id')
  })
}

for (const kind of storeKinds) {
  t.test(`${kind} store: malformed ids, cursors and limits are a 400, and reach no store`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'json' })
    const gateway = await withGateway(t, {
      config: { ...redisSection(kind, redis, `admin-input-${kind}:`), admin: { token: ADMIN_TOKEN }, sessions: { binding: { header: 'x-user' }, maxPerPrincipal: 1 }, routes: [{ path: '/mcp', upstream: upstream.url }] }
    })
    const url = `${gateway.origin}/mcp`
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
    const alice = (await post(url, initializeRequest(1), undefined, { 'x-user': 'alice' })).headers.get('mcp-session-id') as string
    const refused = async (method: string, path: string, why: string): Promise<void> => {
      const answer = await request(`${gateway.origin}${path}`, { method, headers: admin })
      t.equal(answer.status, 400, `${method} ${path.slice(0, 80)}: 400 (${why})`)
      t.match(JSON.parse(answer.text), { jsonrpc: '2.0', error: { code: -32600 } })
    }
    for (const id of ['*', '%2A', `${alice.slice(0, -1)}%3F`, `${alice.slice(0, 8)}*`, '[a-z]*', 'x'.repeat(32), `${alice}xxx`]) {
      await refused('GET', `/admin/sessions/${id}`, 'not a session id')
      await refused('DELETE', `/admin/sessions/${id}`, 'not a session id')
    }
    for (const cursor of ['-1:0', 'abc', '0', '1:2:3', '0:-1', '0:99999999999999999999', `0:${'9'.repeat(25)}`]) {
      await refused('GET', `/admin/sessions?cursor=${encodeURIComponent(cursor)}`, 'not a cursor the gateway hands out')
      await refused('GET', `/admin/sessions?principal=alice&cursor=${encodeURIComponent(cursor)}`, 'not a cursor the gateway hands out')
    }
    for (const limit of ['abc', '0', '-1', '1.5', '1001', '']) await refused('GET', `/admin/sessions?limit=${limit}`, 'limit out of range')
    await refused('DELETE', '/admin/sessions?principal=', 'an empty principal')
    await refused('GET', `/admin/sessions?route=${'r'.repeat(2000)}`, 'a route longer than any')

    t.equal((await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, alice, { 'x-user': 'alice' })).status, 200, 'the session is untouched')
    t.equal((await post(url, initializeRequest(3), undefined, { 'x-user': 'alice' })).status, 429, 'and still counted')
    t.equal((await request(`${gateway.origin}/admin/sessions/${alice}`, { method: 'DELETE', headers: admin })).status, 204)
    t.equal((await post(url, initializeRequest(4), undefined, { 'x-user': 'alice' })).status, 200, 'its end freed its place: no index entry left behind')
    t.same(gateway.logs.filter((line) => (line.level as number) >= 50), [], 'nothing logged at error level')
  })
}
