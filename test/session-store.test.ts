import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { validateConfig, type RedisConfig } from '../src/config/validate-config.js'
import { MemorySessionStore } from '../src/sessions/memory-session-store.js'
import { RedisSessionStore } from '../src/sessions/redis-session-store.js'
import { isWellFormedSessionId, mintSessionId, shortSessionId } from '../src/sessions/session-id.js'
import type { SessionStore, SessionTimeouts } from '../src/sessions/session-store.js'
import { withRedis } from './helpers/fixtures.js'
import type { TestRedis } from './helpers/redis-server.js'

/* One contract, two stores: the same cases against MemorySessionStore and a real redis-server. */

const data = { route: '/mcp', protocolVersion: '2025-11-25', clientInfo: { name: 'c', version: '1' }, clientCapabilities: { roots: {} } }

type StoreFactory = (timeouts: SessionTimeouts) => Promise<SessionStore>

function contract (name: string, makeStore: StoreFactory): void {
  t.test(`${name}: the session store contract`, async (t) => {
    const open = async (timeouts: SessionTimeouts): Promise<SessionStore> => {
      const store = await makeStore(timeouts)
      t.teardown(() => store.close())
      return store
    }

    t.test('create, touch, get, terminate', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      const id = mintSessionId()
      const before = Date.now()
      const created = await store.create(id, data)
      t.match(created, { ...data, id })
      t.ok(created.createdAt >= before - 1000 && created.createdAt <= Date.now() + 1000, 'createdAt is now')
      t.same(await store.touch(id), { id, route: '/mcp', protocolVersion: '2025-11-25', createdAt: created.createdAt })
      t.same(await store.get(id), created, 'get returns client info and capabilities as stored')
      t.equal(await store.touch(mintSessionId()), null, 'an unknown id is not live')
      t.equal(await store.terminate(id, '/other'), false, 'another route cannot end it')
      t.not(await store.touch(id), null, 'still live after the refused terminate')
      t.equal(await store.terminate(id, '/mcp'), true)
      t.equal(await store.touch(id), null, 'terminated means gone')
      t.equal(await store.get(id), null)
      t.equal(await store.terminate(id), false, 'a second terminate finds nothing')
      t.equal(store.isAvailable(), true)
    })

    t.test('terminate without a route ends the session whatever its route', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      const id = mintSessionId()
      await store.create(id, data)
      t.equal(await store.terminate(id), true)
      t.equal(await store.touch(id), null)
    })

    t.test('idle timeout ends a session; every touch slides it', async (t) => {
      const store = await open({ idleTimeout: 400, maxLifetime: 60_000 })
      const idle = mintSessionId()
      const active = mintSessionId()
      await store.create(idle, data)
      await store.create(active, data)
      for (let step = 0; step < 4; step++) {
        await sleep(200)
        t.not(await store.touch(active), null, `touched session live after ${(step + 1) * 200} ms`)
      }
      t.equal(await store.touch(idle), null, 'untouched session expired after 800 ms > 400 ms idle')
    })

    t.test('max lifetime ends a session however active it is', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 500 })
      const id = mintSessionId()
      await store.create(id, data)
      await sleep(200)
      t.not(await store.touch(id), null)
      await sleep(450)
      t.equal(await store.touch(id), null, 'gone 650 ms after creation with a 500 ms lifetime')
    })

    t.test('close twice is harmless', async (t) => {
      const store = await makeStore({ idleTimeout: 1000, maxLifetime: 1000 })
      await store.close()
      await store.close()
      t.pass()
    })
  })
}

contract('memory', async (timeouts) => new MemorySessionStore(timeouts))

/** A resolved `redis` section, through the real validator. */
function redisConfig (section: Record<string, unknown>): RedisConfig {
  return validateConfig({ redis: section, routes: [{ path: '/mcp', upstream: 'http://u/mcp' }] }).redis as RedisConfig
}

let redis: TestRedis | undefined
const redisStore: StoreFactory = async (timeouts) => {
  const store = new RedisSessionStore({ ...timeouts, redis: redisConfig({ url: (redis as TestRedis).url, keyPrefix: 'test:' }) })
  await store.ready()
  return store
}
t.before(async () => { redis = await withRedis(t) })
contract('redis', redisStore)

t.test('redis: keys are namespaced, compact and always carry a TTL', async (t) => {
  const store = await redisStore({ idleTimeout: 30 * 60_000, maxLifetime: 24 * 3_600_000 })
  t.teardown(() => store.close())
  const client = (redis as TestRedis).client()
  const id = mintSessionId()
  await store.create(id, data)
  const key = `test:session:${id}`
  t.equal(await client.exists(key), 1)
  const ttl = await client.pttl(key)
  t.ok(ttl > 29 * 60_000 && ttl <= 30 * 60_000, `TTL is the idle timeout (${ttl} ms)`)
  const fields = await client.hgetall(key)
  t.same(Object.keys(fields).sort(), ['c', 'd', 'i', 'k', 'r', 'v'])
  t.equal(Number(fields.d) - Number(fields.c), 24 * 3_600_000, 'deadline is creation + max lifetime')
  await store.touch(id)
  t.ok(await client.pttl(key) > 29 * 60_000, 'touch keeps a TTL')
})

t.test('redis: the TTL never outlives the max lifetime', async (t) => {
  const store = await redisStore({ idleTimeout: 60_000, maxLifetime: 2_000 })
  t.teardown(() => store.close())
  const client = (redis as TestRedis).client()
  const id = mintSessionId()
  await store.create(id, data)
  t.ok(await client.pttl(`test:session:${id}`) <= 2_000, 'TTL capped by the lifetime at creation')
  await store.touch(id)
  t.ok(await client.pttl(`test:session:${id}`) <= 2_000, 'and after a touch')
})

t.test('redis: waitForReplicas without a replica refuses to hand out a non-durable session', async (t) => {
  const store = new RedisSessionStore({ idleTimeout: 60_000, maxLifetime: 60_000, redis: redisConfig({ url: (redis as TestRedis).url, keyPrefix: 'wait:', waitForReplicas: 1, waitTimeout: '100ms' }) })
  await store.ready()
  t.teardown(() => store.close())
  const id = mintSessionId()
  await t.rejects(store.create(id, data), { code: 'MCPGW_SESSION_STORE_UNAVAILABLE', message: /0 of 1 replicas acknowledged/ })
  t.equal(await (redis as TestRedis).client().exists(`wait:session:${id}`), 0, 'the unacknowledged session was removed')
})

t.test('session ids', async (t) => {
  const ids = new Set(Array.from({ length: 10_000 }, () => mintSessionId()))
  t.equal(ids.size, 10_000, 'no collisions in 10k')
  for (const id of [...ids].slice(0, 200)) {
    t.ok(isWellFormedSessionId(id), 'well formed')
    t.ok([...id].every((character) => character.charCodeAt(0) >= 0x21 && character.charCodeAt(0) <= 0x7e), 'visible ASCII only')
  }
  t.equal(mintSessionId().length, 32, '24 random bytes = 192 bits')
  t.notOk(isWellFormedSessionId('x'.repeat(33)))
  t.notOk(isWellFormedSessionId('x'.repeat(31) + ' '))
  t.notOk(isWellFormedSessionId(''))
  t.equal(shortSessionId('abcdefghijklmnopqrstuvwxyz012345'), 'abcdefgh…')
})
