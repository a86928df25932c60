import t from 'tap'
import { validateConfig, type RedisConfig } from '../src/config/validate-config.js'
import { MemorySessionStore } from '../src/sessions/memory-session-store.js'
import { RedisSessionStore } from '../src/sessions/redis-session-store.js'
import { isWellFormedSessionId, mintSessionId, sessionIdCreatedAt, shortSessionId } from '../src/sessions/session-id.js'
import { UPSTREAM_GRACE_MS, type SessionStore, type SessionTimeouts } from '../src/sessions/session-store.js'
import { eventually } from './helpers/eventually.js'
import { FakeClock } from './helpers/fake-clock.js'
import { withRedis } from './helpers/fixtures.js'
import type { TestRedis } from './helpers/redis-server.js'

/*
 * One contract, two stores: the same cases against MemorySessionStore and a real redis-server.
 * Timing cases never sleep: the memory store runs on a fake clock that the test moves, the Redis
 * store on real TTLs, and both wait with eventually() on the fact that follows (at once with the
 * fake clock, once Redis expired the key with the real one).
 */

const data = { route: '/mcp', protocolVersion: '2025-11-25', clientInfo: { name: 'c', version: '1' }, clientCapabilities: { roots: {} } }

/** How time passes for one store under test. */
interface StoreTime {
  /** Moves the memory store's fake clock; nothing for Redis, whose TTLs run in real time. */
  advance (ms: number): void
  /** Milliseconds passed for the store since it was opened. */
  elapsed (): number
  /** Poll interval for eventually(): 0 with a fake clock (nothing changes between polls). */
  readonly interval: number
}

type StoreFactory = (timeouts: SessionTimeouts) => Promise<SessionStore>
type TimedStoreFactory = (timeouts: SessionTimeouts) => Promise<{ store: SessionStore, time: StoreTime }>

const WAIT = { timeout: 5_000 }

function contract (name: string, makeStore: TimedStoreFactory): void {
  t.test(`${name}: the session store contract`, async (t) => {
    const openTimed = async (timeouts: SessionTimeouts): Promise<{ store: SessionStore, time: StoreTime }> => {
      const opened = await makeStore(timeouts)
      t.teardown(() => opened.store.close())
      return opened
    }
    const open = async (timeouts: SessionTimeouts): Promise<SessionStore> => (await openTimed(timeouts)).store

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
      t.equal(await store.terminate(id, { route: '/other' }), false, 'another route cannot end it')
      t.not(await store.touch(id), null, 'still live after the refused terminate')
      t.equal(await store.terminate(id, { route: '/mcp' }), true)
      t.equal(await store.touch(id), null, 'terminated means gone')
      t.equal(await store.get(id), null)
      t.equal(await store.terminate(id, { route: '/mcp' }), false, 'a second terminate finds nothing')
      t.equal(store.isAvailable(), true)
    })

    t.test('admin: terminateAny and get find a session whoever owns it', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      const unbound = mintSessionId()
      const bound = mintSessionId()
      await store.create(unbound, data)
      await store.create(bound, { ...data, principal: 'alice-hash' })
      t.match(await store.get(bound), { id: bound, principal: 'alice-hash' })
      t.equal(await store.terminateAny(unbound), true)
      t.equal(await store.terminateAny(bound), true)
      t.equal(await store.touch(unbound), null)
      t.equal(await store.touch(bound, 'alice-hash'), null)
      t.equal(await store.terminateAny(bound), false)
    })

    t.test('binding: a bound session exists only for its principal', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      const id = mintSessionId()
      await store.create(id, { ...data, principal: 'alice-hash' })
      t.not(await store.touch(id, 'alice-hash'), null, 'the owner')
      t.equal(await store.touch(id, 'mallory-hash'), null, 'another principal: as if it did not exist')
      t.equal(await store.touch(id), null, 'no principal: as if it did not exist')
      t.equal(await store.terminate(id, { route: '/mcp', principal: 'mallory-hash' }), false, 'another principal cannot end it')
      t.equal(await store.terminate(id, { route: '/mcp' }), false)
      t.not(await store.touch(id, 'alice-hash'), null, 'still live')
      t.equal(await store.terminate(id, { route: '/mcp', principal: 'alice-hash' }), true)
    })

    t.test('maxPerPrincipal: a limit per principal', async (t) => {
      const store = await open({ idleTimeout: 300, maxLifetime: 3_600_000, maxPerPrincipal: 2 })
      const [first, second, third] = [mintSessionId(), mintSessionId(), mintSessionId()]
      await store.create(first, { ...data, principal: 'p1' })
      await store.create(second, { ...data, principal: 'p1' })
      await t.rejects(store.create(third, { ...data, principal: 'p1' }), { code: 'MCPGW_TOO_MANY_SESSIONS', statusCode: 429 })
      t.equal(await store.touch(third, 'p1'), null, 'nothing minted over the limit')
      await store.create(mintSessionId(), { ...data, principal: 'p2' })
      t.pass('another principal has its own count')
      await store.create(mintSessionId(), data)
      t.pass('unbound sessions are not counted')
    })

    t.test('maxPerPrincipal: an ended session frees its place', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000, maxPerPrincipal: 2 })
      const [first, second, third] = [mintSessionId(), mintSessionId(), mintSessionId()]
      await store.create(first, { ...data, principal: 'p-ended' })
      await store.create(second, { ...data, principal: 'p-ended' })
      await t.rejects(store.create(third, { ...data, principal: 'p-ended' }), { code: 'MCPGW_TOO_MANY_SESSIONS' }, 'full')
      t.equal(await store.terminate(first, { route: '/mcp', principal: 'p-ended' }), true)
      await store.create(third, { ...data, principal: 'p-ended' })
      t.pass('a terminated session freed its place')
    })

    t.test('maxPerPrincipal: expired sessions free their place', async (t) => {
      const { store, time } = await openTimed({ idleTimeout: 300, maxLifetime: 3_600_000, maxPerPrincipal: 2 })
      const [first, second] = [mintSessionId(), mintSessionId()]
      await store.create(first, { ...data, principal: 'p-expired' })
      await store.create(second, { ...data, principal: 'p-expired' })
      time.advance(400)
      await eventually(async () => (await store.get(first)) === null && (await store.get(second)) === null,
        { ...WAIT, interval: time.interval, description: 'both sessions to pass their 300 ms idle timeout' })
      await store.create(mintSessionId(), { ...data, principal: 'p-expired' })
      await store.create(mintSessionId(), { ...data, principal: 'p-expired' })
      t.pass('expired sessions freed theirs')
    })

    t.test('maxPerPrincipalPolicy evictOldest: the oldest session makes room, and is reported', async (t) => {
      const { store, time } = await openTimed({ idleTimeout: 60_000, maxLifetime: 3_600_000, maxPerPrincipal: 2, maxPerPrincipalPolicy: 'evictOldest' })
      const ended: string[] = []
      const [first, second, third, fourth] = [mintSessionId(), mintSessionId(), mintSessionId(), mintSessionId()]
      // Only this test's sessions: a Redis store also hears the expiries of other tests' sessions.
      store.onExpired((reason, id, principal) => { if ([first, second, third, fourth].includes(id)) ended.push(`${reason}:${id}:${String(principal)}`) })
      const created = await store.create(first, { ...data, principal: 'p-evict' })
      time.advance(5)
      // Creation times are milliseconds of the store's clock: the next session must be younger.
      await eventually(() => Date.now() > created.createdAt + 1 || time.interval === 0, { ...WAIT, description: 'a later millisecond' })
      await store.create(second, { ...data, principal: 'p-evict' })
      t.not(await store.touch(first, 'p-evict'), null, 'touching the oldest does not make it younger')
      await store.create(third, { ...data, principal: 'p-evict' })
      t.equal(await store.touch(first, 'p-evict'), null, 'the oldest session ended')
      t.not(await store.touch(second, 'p-evict'), null)
      t.not(await store.touch(third, 'p-evict'), null, 'the new one was created')
      t.same(ended, [`evicted:${first}:p-evict`], 'the eviction is reported like an expiry, as evicted, with its principal')
      await store.create(fourth, { ...data, principal: 'p-other' })
      t.equal((await store.list({ limit: 10, principal: 'p-evict' })).sessions.length, 2, 'the principal holds its limit')
      t.same(ended, [`evicted:${first}:p-evict`], 'other principals evict nothing')
    })

    t.test('an expiry is reported with the session\'s principal', async (t) => {
      const { store, time } = await openTimed({ idleTimeout: 800, maxLifetime: 3_600_000 })
      const ended: string[] = []
      const [bound, unbound] = [mintSessionId(), mintSessionId()]
      store.onExpired((reason, id, principal) => { if (id === bound || id === unbound) ended.push(`${reason}:${id}:${String(principal)}`) })
      await store.create(bound, { ...data, principal: 'p-expiry' })
      await store.create(unbound, data)
      time.advance(900)
      await eventually(async () => {
        // The memory store notices an expiry when it next looks at the session; Redis by itself.
        await Promise.all([store.get(bound), store.get(unbound)])
        return ended.length === 2
      // Redis expires keys in its own background cycle, which a busy machine (CI) slows: a longer bound.
      }, { timeout: 15_000, interval: time.interval, description: 'both expiries to be reported' })
      t.same(ended.sort(), [`idle:${bound}:p-expiry`, `idle:${unbound}:undefined`].sort())
    })

    t.test('admin: get and terminateAny take an id literally, never as a pattern', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000, maxPerPrincipal: 1 })
      const id = mintSessionId()
      await store.create(id, { ...data, principal: 'p-glob' })
      for (const pattern of ['*', `${id.slice(0, -1)}?`, `${id.slice(0, 8)}*`, `[${id.slice(0, 1)}]${id.slice(1)}`]) {
        t.equal(await store.get(pattern), null, `get(${JSON.stringify(pattern)}) finds nothing`)
        t.equal(await store.terminateAny(pattern), false, `terminateAny(${JSON.stringify(pattern)}) ends nothing`)
      }
      t.not(await store.touch(id, 'p-glob'), null, 'the session is untouched')
      await t.rejects(store.create(mintSessionId(), { ...data, principal: 'p-glob' }), { code: 'MCPGW_TOO_MANY_SESSIONS' }, 'and still counted')
      t.equal(await store.terminateAny(id), true)
      await store.create(mintSessionId(), { ...data, principal: 'p-glob' })
      t.pass('its end freed its place: no index entry left behind')
    })

    t.test('admin: list refuses a cursor it did not hand out', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      for (const cursor of ['-1:0', 'abc', '0', '0:', '0:1:2', '0:99999999999999999999', `0:${'9'.repeat(21)}`]) {
        for (const principal of [undefined, 'p-cursor']) {
          await t.rejects(store.list({ cursor, limit: 10, principal }), { code: 'MCPGW_INVALID_REQUEST', statusCode: 400 }, `cursor ${JSON.stringify(cursor)}${principal === undefined ? '' : ' by principal'}`)
        }
      }
    })

    t.test('admin: list pages through sessions, by route or by principal', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      const mine = new Set<string>()
      for (let index = 0; index < 7; index++) {
        const id = mintSessionId()
        mine.add(id)
        await store.create(id, { ...data, principal: 'lister', route: index % 2 === 0 ? '/mcp' : '/other' })
      }
      const seen = new Set<string>()
      let cursor: string | undefined
      let pages = 0
      do {
        const page = await store.list({ cursor, limit: 3, principal: 'lister' })
        for (const session of page.sessions) seen.add(session.id)
        cursor = page.nextCursor
        pages++
      } while (cursor !== undefined && pages < 10)
      t.same([...seen].sort(), [...mine].sort(), 'every session of the principal, across pages')
      const byRoute = await store.list({ limit: 1000, route: '/other', principal: 'lister' })
      t.equal(byRoute.sessions.length, 3)
      const everything = new Set<string>()
      cursor = undefined
      do {
        const page = await store.list({ cursor, limit: 1000 })
        for (const session of page.sessions) everything.add(session.id)
        cursor = page.nextCursor
      } while (cursor !== undefined)
      t.ok([...mine].every((id) => everything.has(id)), 'an unfiltered listing includes them')
    })

    t.test('admin: terminatePrincipal ends every session of a principal', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      for (let index = 0; index < 7; index++) {
        await store.create(mintSessionId(), { ...data, principal: 'leaver', route: index % 2 === 0 ? '/mcp' : '/other' })
      }
      t.equal(await store.terminatePrincipal('leaver'), 7)
      t.equal((await store.list({ limit: 1000, principal: 'leaver' })).sessions.length, 0)
    })

    t.test('rate limit: a fixed window shared by everyone using the store', async (t) => {
      const { store, time } = await openTimed({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      const key = `client-${mintSessionId()}`
      const results = []
      for (let index = 0; index < 4; index++) results.push(await store.consumeRateLimit(key, 3, 300))
      t.same(results.map((result) => result.allowed), [true, true, true, false])
      t.ok((results[3]?.resetInMs ?? 0) > 0 && (results[3]?.resetInMs ?? 0) <= 300, 'says when the window resets')
      time.advance(350)
      // Every refused attempt counts against the old window only; the first one allowed is the new window's.
      const next = await eventually(async () => {
        const result = await store.consumeRateLimit(key, 3, 300)
        return result.allowed && result
      }, { ...WAIT, interval: time.interval, description: 'the 300 ms window to reset' })
      t.equal(next.allowed, true, 'a new window')
    })

    t.test('idle timeout: an untouched session ends', async (t) => {
      const { store, time } = await openTimed({ idleTimeout: 400, maxLifetime: 60_000 })
      const idle = mintSessionId()
      await store.create(idle, data)
      time.advance(450)
      // get() reads without sliding the idle timeout, unlike touch().
      await eventually(async () => (await store.get(idle)) === null, { ...WAIT, interval: time.interval, description: 'the 400 ms idle timeout' })
      t.equal(await store.touch(idle), null, `untouched session expired ${time.elapsed()} ms after creation with a 400 ms idle timeout`)
    })

    t.test('idle timeout: every touch slides it', async (t) => {
      const { store, time } = await openTimed({ idleTimeout: 400, maxLifetime: 60_000 })
      const active = mintSessionId()
      const untouched = mintSessionId()
      await store.create(active, data)
      await store.create(untouched, data)
      // Touched about every 200 ms (the fake clock's step, or the poll interval plus a round trip to
      // Redis) until a session created with it and never touched has expired, and at least 4 times.
      let touches = 0
      await eventually(async () => {
        time.advance(200)
        touches++
        t.not(await store.touch(active), null, `touched session live after ${time.elapsed()} ms`)
        return touches >= 4 && (await store.get(untouched)) === null
      }, { ...WAIT, interval: time.interval === 0 ? 0 : 150, description: 'the untouched session to expire' })
      t.ok(time.elapsed() >= 400, `the touched session outlived the 400 ms idle timeout (${time.elapsed()} ms)`)
    })

    t.test('max lifetime ends a session however active it is', async (t) => {
      const { store, time } = await openTimed({ idleTimeout: 60_000, maxLifetime: 500 })
      const id = mintSessionId()
      await store.create(id, data)
      time.advance(200)
      t.not(await store.touch(id), null)
      time.advance(450)
      // Touched on every poll: activity does not keep it past its lifetime.
      await eventually(async () => (await store.touch(id)) === null, { ...WAIT, interval: time.interval, description: 'the 500 ms lifetime to end' })
      t.equal(await store.touch(id), null, `gone ${time.elapsed()} ms after creation with a 500 ms lifetime`)
    })

    t.test('bridge state: log level and resource subscriptions, read with the client, only by the owner', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      const id = mintSessionId()
      await store.create(id, { ...data, principal: 'alice-hash' })
      t.match(await store.touch(id, 'alice-hash', { withClient: true }), { clientInfo: data.clientInfo, bridge: { resourceSubscriptions: [] } })
      t.equal((await store.touch(id, 'alice-hash', { withClient: true }))?.bridge?.logLevel, undefined, 'no level until the client sets one')
      t.equal(await store.updateBridgeState(id, 'alice-hash', { logLevel: 'warning' }), true)
      t.equal(await store.updateBridgeState(id, 'alice-hash', { subscribe: 'file:///a b.txt' }), true)
      t.equal(await store.updateBridgeState(id, 'alice-hash', { subscribe: 'demo://x' }), true)
      t.equal(await store.updateBridgeState(id, 'alice-hash', { subscribe: 'demo://x' }), true, 'subscribing twice is one subscription')
      t.equal(await store.updateBridgeState(id, 'alice-hash', { unsubscribe: 'file:///a b.txt' }), true)
      const live = await store.touch(id, 'alice-hash', { withClient: true })
      t.same(live?.bridge, { logLevel: 'warning', resourceSubscriptions: ['demo://x'] })
      t.same(live?.clientCapabilities, data.clientCapabilities, 'the client\'s data is unchanged')
      t.equal(await store.updateBridgeState(id, 'mallory-hash', { logLevel: 'debug' }), false, 'someone else\'s session does not exist')
      t.equal(await store.updateBridgeState(id, undefined, { logLevel: 'debug' }), false)
      t.equal((await store.touch(id, 'alice-hash', { withClient: true }))?.bridge?.logLevel, 'warning')
      await store.terminate(id, { route: '/mcp', principal: 'alice-hash' })
      t.equal(await store.updateBridgeState(id, 'alice-hash', { logLevel: 'debug' }), false, 'an ended session stays ended')
    })

    t.test('publish and subscribe: every subscriber of a channel, nothing kept for later', async (t) => {
      const store = await open({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
      await store.publish('early', 'lost')
      const heard: string[] = []
      const first = await store.subscribe('news', (message) => { heard.push(`1:${message}`) })
      const second = await store.subscribe('news', (message) => { heard.push(`2:${message}`) })
      const other = await store.subscribe('early', (message) => { heard.push(`early:${message}`) })
      const markers: string[] = []
      await store.subscribe('marker', (message) => { markers.push(message) })
      await store.publish('news', 'a')
      await eventually(() => heard.length === 2, { ...WAIT, description: 'both subscribers to hear "a"' })
      t.same(heard.sort(), ['1:a', '2:a'])
      first()
      first()
      await store.publish('news', 'b')
      await eventually(() => heard.length === 3, { ...WAIT, description: 'the remaining subscriber to hear "b"' })
      t.same(heard.slice(2), ['2:b'], 'an unsubscribed listener hears nothing more')
      second()
      other()
      await store.publish('news', 'c')
      // Messages from one publisher arrive in order: once the marker published after "c" is heard,
      // "c" would have been heard too, had anyone still listened.
      await store.publish('marker', 'after c')
      await eventually(() => markers.includes('after c'), { ...WAIT, description: 'the marker published after "c"' })
      t.equal(heard.length, 3)
    })

    t.test('stateful upstreams: the upstream session is read with touch, swapped once, handed out once after the end', async (t) => {
      const { store, time } = await openTimed({ idleTimeout: 1_000, maxLifetime: 3_600_000 })
      const a = { instance: 'http://a/mcp', sessionId: 'upstream-1' }
      const b = { instance: 'http://b/mcp', sessionId: 'upstream-2' }
      const c = { instance: 'http://b/mcp', sessionId: 'upstream-3' }
      const id = mintSessionId()
      await store.create(id, { ...data, principal: 'p1', upstream: a })
      t.match(await store.touch(id, 'p1'), { id, upstream: a }, 'touch reads the upstream session in its one round trip')
      t.match(await store.touch(id, 'p1', { withClient: true }), { upstream: a, clientInfo: data.clientInfo, clientCapabilities: data.clientCapabilities }, 'with what a replay needs')
      t.same(await store.upstreamSessionCounts('/mcp'), new Map([['http://a/mcp', 1]]))

      t.equal(await store.swapUpstream(id, 'p2', a, b), null, 'another principal cannot move it')
      t.same(await store.swapUpstream(id, 'p1', a, b), b, 'the first swap wins')
      t.same(await store.swapUpstream(id, 'p1', a, c), b, 'a racing swap from the same old session gets the winner')
      t.match(await store.touch(id, 'p1'), { upstream: b })
      // The Redis store counts after the swap, in another slot: the counts follow, not in the same step.
      await eventually(async () => {
        const counts = await store.upstreamSessionCounts('/mcp')
        return counts.get('http://b/mcp') === 1 && (counts.get('http://a/mcp') ?? 0) === 0
      }, { ...WAIT, interval: time.interval, description: 'the counts to follow the swap' })
      t.pass('the counts follow the swap')

      t.equal(await store.takeUpstream(id, 'p1'), null, 'nothing is handed out while the session lives')
      t.equal(await store.terminate(id, { route: '/mcp', principal: 'p1' }), true)
      t.equal(await store.takeUpstream(id, 'p2'), null, 'only to the owner')
      t.same(await store.takeUpstream(id, 'p1'), { route: '/mcp', upstream: b }, 'the ended session\'s upstream session, once')
      t.equal(await store.takeUpstream(id, 'p1'), null, 'and never twice')

      const expiring = mintSessionId()
      await store.create(expiring, { ...data, upstream: a })
      time.advance(1_500)
      // get, not touch: a touch would slide the idle timeout it waits for.
      await eventually(async () => await store.get(expiring) === null, { ...WAIT, interval: time.interval, description: 'the session to expire' })
      t.same(await store.takeUpstream(expiring, undefined), { route: '/mcp', upstream: a }, 'still handed out after the session expired')
      t.equal(await store.swapUpstream(expiring, undefined, a, b), null, 'an ended session is not moved')

      const older = mintSessionId()
      await store.create(older, data)
      t.same(await store.swapUpstream(older, undefined, { instance: '', sessionId: '' }, a), a, 'a session created without an upstream session (its route became stateful) is moved from none')
      t.match(await store.touch(older), { upstream: a })
    })

    t.test('close twice is harmless', async (t) => {
      const { store } = await makeStore({ idleTimeout: 1000, maxLifetime: 1000 })
      await store.close()
      await store.close()
      t.pass()
    })
  })
}

contract('memory', async (timeouts) => {
  const clock = new FakeClock()
  return { store: new MemorySessionStore(timeouts, clock.now), time: { advance: (ms) => { clock.advance(ms) }, elapsed: () => clock.elapsed(), interval: 0 } }
})

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
t.before(async () => {
  redis = await withRedis(t)
  // Expiries reach the store through keyspace events, as docs/operating.md tells operators to configure.
  await redis.client().config('SET', 'notify-keyspace-events', 'Ex')
})
contract('redis', async (timeouts) => {
  const store = await redisStore(timeouts)
  const opened = Date.now()
  return { store, time: { advance: () => {}, elapsed: () => Date.now() - opened, interval: 25 } }
})

t.test('redis: messages reach the subscribers of every store on the same Redis and prefix, only those', async (t) => {
  const publisher = await redisStore({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
  const subscriber = await redisStore({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
  const elsewhere = new RedisSessionStore({ idleTimeout: 60_000, maxLifetime: 3_600_000, redis: redisConfig({ url: (redis as TestRedis).url, keyPrefix: 'other:' }) })
  t.teardown(async () => { await Promise.all([publisher.close(), subscriber.close(), elsewhere.close()]) })
  const heard: string[] = []
  const [unsubscribe] = await Promise.all([
    subscriber.subscribe('instance:x', (message) => { heard.push(message) }),
    subscriber.subscribe('instance:x', (message) => { heard.push(`again:${message}`) })
  ])
  let elsewhereHeardMarker = false
  await elsewhere.subscribe('instance:x', (message) => {
    if (message === 'marker') elsewhereHeardMarker = true
    else heard.push(`other prefix:${message}`)
  })
  await publisher.publish('instance:x', 'hello')
  await eventually(() => heard.length >= 2, { ...WAIT, description: 'both listeners to hear "hello"' })
  // Redis pushes a PUBLISH to its subscribers before it answers: once the other prefix hears a message
  // published after "hello", "hello" would have reached it first, had it been sent there.
  await elsewhere.publish('instance:x', 'marker')
  await eventually(() => elsewhereHeardMarker, { ...WAIT, description: 'the other prefix to hear its own marker' })
  t.same(heard.sort(), ['again:hello', 'hello'], 'both listeners of one SUBSCRIBE; not another key prefix')
  unsubscribe()
})

t.test('redis: a key prefix with glob characters lists and finds its own sessions only', async (t) => {
  const globbed = new RedisSessionStore({ idleTimeout: 60_000, maxLifetime: 3_600_000, redis: redisConfig({ url: (redis as TestRedis).url, keyPrefix: 'g?[*]:' }) })
  const plain = new RedisSessionStore({ idleTimeout: 60_000, maxLifetime: 3_600_000, redis: redisConfig({ url: (redis as TestRedis).url, keyPrefix: 'gx*:' }) })
  t.teardown(async () => { await Promise.all([globbed.close(), plain.close()]) })
  await Promise.all([globbed.ready(), plain.ready()])
  const other = mintSessionId()
  await plain.create(other, { ...data, principal: 'p-prefix' })
  t.same((await globbed.list({ limit: 1000 })).sessions, [], 'another prefix\'s sessions are not listed')
  t.equal(await globbed.get(other), null, 'nor found')
  t.equal(await globbed.terminateAny(other), false, 'nor ended')
  const mine = mintSessionId()
  await globbed.create(mine, { ...data, principal: 'p-prefix' })
  t.same((await globbed.list({ limit: 1000 })).sessions.map((session) => session.id), [mine])
  t.match(await globbed.get(mine), { id: mine })
})

t.test('redis: a bound session and its principal index share one Cluster slot', async (t) => {
  const store = await redisStore({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
  t.teardown(() => store.close())
  const client = (redis as TestRedis).client()
  const id = mintSessionId()
  await store.create(id, { ...data, principal: 'abcDEF123' })
  t.equal(await client.exists(`test:session:{abcDEF123}:${id}`), 1)
  t.same(await client.zrange('test:principal:{abcDEF123}', '0', '-1'), [id])
  t.equal(await client.call('CLUSTER', 'KEYSLOT', `test:session:{abcDEF123}:${id}`).catch(() => 'no-cluster'), await client.call('CLUSTER', 'KEYSLOT', 'test:principal:{abcDEF123}').catch(() => 'no-cluster'))
  t.ok(await client.pttl('test:principal:{abcDEF123}') > 0, 'the index expires too')
})

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
  t.same(Object.keys(fields).sort(), ['c', 'd', 'i', 'k', 'p', 'r', 'v'])
  t.equal(Number(fields.d) - Number(fields.c), 24 * 3_600_000, 'deadline is creation + max lifetime')
  await store.touch(id)
  t.ok(await client.pttl(key) > 29 * 60_000, 'touch keeps a TTL')
})

t.test('redis: a stateful session\'s upstream record shares its Cluster slot and outlives it by the grace only', async (t) => {
  const store = await redisStore({ idleTimeout: 60_000, maxLifetime: 120_000 })
  t.teardown(() => store.close())
  const client = (redis as TestRedis).client()
  const id = mintSessionId()
  await store.create(id, { ...data, principal: 'slot1', upstream: { instance: 'http://a/mcp', sessionId: 'u1' } })
  const record = `test:upstream:{slot1}:${id}`
  t.equal(await client.exists(record), 1)
  t.equal(await client.call('CLUSTER', 'KEYSLOT', record).catch(() => 'no-cluster'), await client.call('CLUSTER', 'KEYSLOT', `test:session:{slot1}:${id}`).catch(() => 'no-cluster'))
  const ttl = await client.pttl(record)
  t.ok(ttl > 120_000 && ttl <= 120_000 + UPSTREAM_GRACE_MS, `the record lives for the lifetime plus the grace (${ttl} ms)`)
  t.same(Object.keys(await client.hgetall(`test:session:{slot1}:${id}`)).sort(), ['c', 'd', 'i', 'k', 'n', 'p', 'r', 'u', 'v'])
  const unbound = mintSessionId()
  await store.create(unbound, { ...data, upstream: { instance: 'http://a/mcp', sessionId: 'u2' } })
  t.equal(await client.exists(`test:upstream:{test:session:${unbound}}:${unbound}`), 1, 'an unbound session\'s record is tagged by its session key')
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
  t.match(mintSessionId(), /^[A-Za-z0-9_-]{32}\.[0-9a-z]+$/, '24 random bytes (192 bits), then the creation time')
  t.notOk(isWellFormedSessionId('x'.repeat(33)))
  t.notOk(isWellFormedSessionId('x'.repeat(31) + ' '))
  t.notOk(isWellFormedSessionId('x'.repeat(32)), 'the creation time is part of the id')
  const before = Date.now()
  t.ok(Math.abs(sessionIdCreatedAt(mintSessionId()) - before) < 1000, 'the creation time reads back')
  t.notOk(isWellFormedSessionId(''))
  t.equal(shortSessionId('abcdefghijklmnopqrstuvwxyz012345'), 'abcdefgh…')
})
