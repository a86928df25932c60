import t from 'tap'
import { hashPrincipal } from '../src/security/principal.js'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, post, request } from './helpers/mcp-http.js'
import { startTestRedis, type TestRedis } from './helpers/redis-server.js'

/*
 * With `redis.waitForReplicas`, every end of a session waits for the replicas like its creation does
 * (docs/scaling.md): a DELETE, an admin DELETE, an admin delete-by-principal. Unacknowledged, the
 * end is undone and answered 503, so a failover cannot bring back a session its client was told had
 * ended. A real master and a real replica; the replica is stopped to cut it off.
 */

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789'
const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
const KEY_PREFIX = 'ack:'

async function replicaLinkUp (replica: TestRedis): Promise<void> {
  const client = replica.client()
  await eventually(async () => (await client.info('replication')).includes('master_link_status:up'), { timeout: 15_000, interval: 50, description: 'the replica to sync with the master' })
}

t.test('an end the replica does not acknowledge is a 503 and the session stays; acknowledged, it ends', async (t) => {
  const master = await withRedis(t)
  const replica = await startTestRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
  t.teardown(() => replica.close())
  await replicaLinkUp(replica)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, {
    config: {
      redis: { url: master.url, keyPrefix: KEY_PREFIX, waitForReplicas: 1, waitTimeout: '200ms', commandTimeout: '2s' },
      sessions: { binding: { header: 'x-user' } },
      admin: { token: ADMIN_TOKEN },
      routes: [{ path: '/mcp', upstream: upstream.url }]
    }
  })
  const url = `${gateway.origin}/mcp`
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
  const open = async (user: string): Promise<string> => {
    const answer = await post(url, initializeRequest(1), undefined, { 'x-user': user })
    t.equal(answer.status, 200, `initialize for ${user}`)
    return answer.headers.get('mcp-session-id') as string
  }
  const alice = await open('alice')
  const carol = await open('carol')
  const bob = [await open('bob'), await open('bob')]
  const onMaster = master.client()
  const exists = async (user: string, id: string): Promise<boolean> => await onMaster.exists(`${KEY_PREFIX}session:{${hashPrincipal('header', user)}}:${id}`) === 1

  await replica.stop()

  const deleted = await request(url, { method: 'DELETE', headers: { 'mcp-session-id': alice, 'x-user': 'alice' } })
  t.equal(deleted.status, 503, 'client DELETE: 503')
  t.match(JSON.parse(deleted.text), { jsonrpc: '2.0', error: { code: -32603, message: /not acknowledged by the Redis replicas/ } })
  t.ok(await exists('alice', alice), 'the session is still on the master')
  t.equal((await post(url, toolsList, alice, { 'x-user': 'alice' })).status, 200, 'and still usable')
  t.same(await onMaster.zrange(`${KEY_PREFIX}principal:{${hashPrincipal('header', 'alice')}}`, '0', '-1'), [alice], 'and still in its principal\'s index')

  t.equal((await request(`${gateway.origin}/admin/sessions/${carol}`, { method: 'DELETE', headers: admin })).status, 503, 'admin DELETE: 503')
  t.ok(await exists('carol', carol), 'the session is still on the master')

  t.equal((await request(`${gateway.origin}/admin/sessions?principal=bob`, { method: 'DELETE', headers: admin })).status, 503, 'admin delete-by-principal: 503')
  for (const id of bob) t.ok(await exists('bob', id), 'every session of the principal is still on the master')
  t.equal((await post(url, toolsList, bob[0], { 'x-user': 'bob' })).status, 200)

  await replica.start()
  await replicaLinkUp(replica)

  t.equal((await request(url, { method: 'DELETE', headers: { 'mcp-session-id': alice, 'x-user': 'alice' } })).status, 204, 'acknowledged: 204')
  t.notOk(await exists('alice', alice))
  t.equal((await post(url, toolsList, alice, { 'x-user': 'alice' })).status, 404)
  t.equal((await request(`${gateway.origin}/admin/sessions/${carol}`, { method: 'DELETE', headers: admin })).status, 204)
  t.same(JSON.parse((await request(`${gateway.origin}/admin/sessions?principal=bob`, { method: 'DELETE', headers: admin })).text), { terminated: 2 })
  const onReplica = replica.client()
  await eventually(async () => (await onReplica.keys(`${KEY_PREFIX}session:*`)).length === 0, { timeout: 5_000, description: 'the replica to hold no session' })
  t.pass('the replica holds none of them')
})

t.test('an unacknowledged eviction is undone with the creation it made room for', async (t) => {
  const master = await withRedis(t)
  const replica = await startTestRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
  t.teardown(() => replica.close())
  await replicaLinkUp(replica)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, {
    config: {
      redis: { url: master.url, keyPrefix: KEY_PREFIX, waitForReplicas: 1, waitTimeout: '200ms', commandTimeout: '2s' },
      sessions: { binding: { header: 'x-user' }, maxPerPrincipal: 1, maxPerPrincipalPolicy: 'evictOldest' },
      routes: [{ path: '/mcp', upstream: upstream.url }]
    }
  })
  const url = `${gateway.origin}/mcp`
  const first = (await post(url, initializeRequest(1), undefined, { 'x-user': 'dave' })).headers.get('mcp-session-id') as string
  await replica.stop()
  const refused = await post(url, initializeRequest(2), undefined, { 'x-user': 'dave' })
  t.equal(refused.status, 503, 'the creation is not acknowledged')
  t.equal(refused.headers.get('mcp-session-id'), null, 'nothing minted')
  t.equal((await post(url, toolsList, first, { 'x-user': 'dave' })).status, 200, 'the session it would have evicted is back')
  await replica.start()
  await replicaLinkUp(replica)
  const second = await post(url, initializeRequest(3), undefined, { 'x-user': 'dave' })
  t.equal(second.status, 200, 'acknowledged: created')
  t.equal((await post(url, toolsList, first, { 'x-user': 'dave' })).status, 404, 'and the oldest evicted')
})
