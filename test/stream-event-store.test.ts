import t from 'tap'
import { Cluster, type Redis } from 'ioredis'
import { validateConfig, type RedisConfig } from '../src/config/validate-config.js'
import { GatewayError } from '../src/errors.js'
import { MemorySessionStore } from '../src/sessions/memory-session-store.js'
import { hashTag, sessionKey, streamBytesKey, streamIndexKey, streamKey } from '../src/sessions/redis-keys.js'
import { RedisSessionStore } from '../src/sessions/redis-session-store.js'
import { mintSessionId } from '../src/sessions/session-id.js'
import type { SessionStore, SessionTimeouts } from '../src/sessions/session-store.js'
import { KEPT_STREAM_OVERHEAD_BYTES, keptBytes, NOT_KEPT, type StoredEvent, type StreamEventStore, type StreamEventStoreLimits, type StreamOwner } from '../src/streams/stream-event-store.js'
import { eventually } from './helpers/eventually.js'
import { FakeClock } from './helpers/fake-clock.js'
import { withRedis } from './helpers/fixtures.js'
import { freePort, type TestRedis } from './helpers/redis-server.js'
import { startTestCluster } from './helpers/redis-topologies.js'

/*
 * One contract, two stores (docs/scaling.md, "Keys and scripts"): the stream event store of the
 * memory session store on a fake clock, and of the Redis session store on a real redis-server, where
 * a second RedisSessionStore on the same Redis plays another replica. Then the Redis layout: keys
 * in the session's Cluster slot, on a real Cluster too.
 */

const data = { route: '/mcp', protocolVersion: '2025-11-25', clientInfo: { name: 'c', version: '1' }, clientCapabilities: {} }
const timeouts: SessionTimeouts = { idleTimeout: 60_000, maxLifetime: 3_600_000 }
// Byte limits far above what these tests keep: counted (and cleaned up) everywhere, refusing nowhere but where a test says.
const LIMITS: StreamEventStoreLimits = { maxEvents: 100, retention: 60_000, maxBytesPerStream: 16 * 1024 * 1024, maxBytesPerSession: 64 * 1024 * 1024 }
const limits = (changes: Partial<StreamEventStoreLimits>): StreamEventStoreLimits => ({ ...LIMITS, ...changes })
const WAIT = { timeout: 5_000 }

interface Replicas {
  /** The session store whose sessions the streams belong to. */
  readonly sessions: SessionStore
  /** Another replica's view of the same streams (memory: the same store, there is only one instance). */
  readonly other: SessionStore
  /** Moves the memory store's clock; nothing for Redis. */
  advance (ms: number): void
  /** Poll interval for eventually(): 0 with a fake clock. */
  readonly interval: number
  /** Redis only: the keys left under the prefix that mention `id`. */
  readonly keysOf?: (id: string) => Promise<string[]>
}

type ReplicasFactory = () => Promise<Replicas>

const message = (seq: number, text = `m${seq}`): StoredEvent => ({ seq, kind: 'message', data: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { text } }) })

function contract (name: string, open: ReplicasFactory): void {
  t.test(`${name}: the stream event store contract`, async (t) => {
    /** A live session and the stream store, with `limits`. */
    const openSession = async (limits: StreamEventStoreLimits = LIMITS, principal?: string): Promise<Replicas & { store: StreamEventStore, owner: StreamOwner }> => {
      const replicas = await open()
      const owner = { sessionId: mintSessionId(), principal }
      await replicas.sessions.create(owner.sessionId, { ...data, principal })
      return { ...replicas, store: replicas.sessions.streamEvents(limits), owner }
    }

    t.test('append and read: in order, after an exclusive position, at most limit', async (t) => {
      const { store, owner } = await openSession()
      const events: StoredEvent[] = [{ seq: 1, kind: 'priming', data: '' }, message(2), { ...message(3), type: 'custom' }, message(4), { seq: 5, kind: 'end', data: '' }]
      // Not awaited one by one: the hot path pipelines its appends.
      t.same(await Promise.all(events.map(async (event) => await store.append(owner, 'post-1', event))), ['stored', 'stored', 'stored', 'stored', 'stored'])
      t.same(await store.read(owner, 'post-1', 0, 100), events, 'everything, oldest first, type kept only where there is one')
      t.same(await store.read(owner, 'post-1', 2, 100), events.slice(2), 'after 2: from 3')
      t.same(await store.read(owner, 'post-1', 1, 2), events.slice(1, 3), 'at most limit')
      t.same(await store.read(owner, 'post-1', 4, 100), events.slice(4), 'after 4: the end')
      t.equal(await store.read(owner, 'post-1', 5, 100), null, 'after the end: nothing will ever come (not held)')
    })

    t.test('read: null for a stream this owner does not have', async (t) => {
      const { sessions, store, owner } = await openSession(LIMITS, 'alice-hash')
      const unbound = { sessionId: mintSessionId(), principal: undefined }
      await sessions.create(unbound.sessionId, data)
      await store.append(owner, 'post-1', message(1))
      await store.append(unbound, 'post-1', message(1))
      t.equal(await store.read(owner, 'never-stored', 0, 10), null, 'an unknown stream')
      t.equal(await store.read({ ...unbound, principal: undefined }, 'never-stored', 0, 10), null)
      t.equal(await store.read({ sessionId: mintSessionId(), principal: 'alice-hash' }, 'post-1', 0, 10), null, 'the same stream name of another session id')
      t.equal(await store.read({ ...owner, principal: 'mallory-hash' }, 'post-1', 0, 10), null, 'another principal')
      t.equal(await store.read({ ...owner, principal: undefined }, 'post-1', 0, 10), null, 'no principal for a bound session')
      t.equal(await store.read({ ...unbound, principal: 'alice-hash' }, 'post-1', 0, 10), null, 'a principal for an unbound session')
      t.equal(await store.append({ ...owner, principal: 'mallory-hash' }, 'post-1', message(2)), 'session gone', 'nor can another principal append')
      t.same((await store.read(owner, 'post-1', 0, 10))?.map((event) => event.seq), [1], 'the owner\'s stream is unchanged')
    })

    t.test('append: session gone once the session has ended, and nothing stored', async (t) => {
      const { sessions, store, owner } = await openSession(LIMITS, 'alice-hash')
      t.equal(await store.append(owner, 'post-1', message(1)), 'stored')
      t.equal(await sessions.terminate(owner.sessionId, { route: '/mcp', principal: 'alice-hash' }), true)
      t.equal(await store.append(owner, 'post-1', message(2)), 'session gone', 'to a stream it had')
      t.equal(await store.append(owner, 'post-2', message(1)), 'session gone', 'to a new stream')
      t.same((await store.read(owner, 'post-1', 0, 10))?.map((event) => event.seq), [1], 'nothing added')
      t.equal(await store.read(owner, 'post-2', 0, 10), null, 'nothing created')
      t.equal(await store.append({ sessionId: mintSessionId(), principal: undefined }, 'post-1', message(1)), 'session gone', 'a session that never existed')
    })

    t.test('append: a seq not above the last one rejects and stores nothing', async (t) => {
      const { store, owner } = await openSession()
      await store.append(owner, 'post-1', message(1))
      await store.append(owner, 'post-1', message(2))
      await t.rejects(store.append(owner, 'post-1', message(2, 'again')), { code: 'MCPGW_INTERNAL_ERROR' }, 'a duplicate')
      await t.rejects(store.append(owner, 'post-1', message(1, 'older')), { code: 'MCPGW_INTERNAL_ERROR' }, 'an older one')
      await t.rejects(store.append(owner, 'post-1', message(0)), { code: 'MCPGW_INTERNAL_ERROR' }, 'seq 0')
      t.same(await store.read(owner, 'post-1', 0, 10), [message(1), message(2)])
    })

    t.test('maxEvents: the newest are kept', async (t) => {
      const { store, owner } = await openSession(limits({ maxEvents: 3, retention: 60_000 }))
      for (let seq = 1; seq <= 7; seq++) await store.append(owner, 'post-1', message(seq))
      t.same((await store.read(owner, 'post-1', 0, 100))?.map((event) => event.seq), [5, 6, 7])
      await t.rejects(store.append(owner, 'post-1', message(4)), { code: 'MCPGW_INTERNAL_ERROR' }, 'a trimmed seq still counts as stored')
      t.equal(await store.append(owner, 'post-1', message(8)), 'stored')
      t.same((await store.read(owner, 'post-1', 6, 100))?.map((event) => event.seq), [7, 8])
    })

    t.test('retention: a stream is forgotten that long after its last append', async (t) => {
      const { store, owner, advance, interval } = await openSession(limits({ maxEvents: 100, retention: 300 }))
      await store.append(owner, 'post-1', message(1))
      t.same(await store.read(owner, 'post-1', 0, 10), [message(1)])
      advance(400)
      await eventually(async () => await store.read(owner, 'post-1', 0, 10) === null, { ...WAIT, interval, description: 'the stream to pass its 300 ms retention' })
      t.equal(await store.append(owner, 'post-1', message(2)), 'stream gone', 'a later append does not make it again with a gap where its start was')
      t.equal(await store.read(owner, 'post-1', 0, 10), null, 'nothing kept')
      t.equal(await store.append(owner, 'post-2', message(1)), 'stored', 'the session itself lives on: a new stream starts')
    })

    t.test('read: a byte budget cuts a page after the event that reaches it, never before the first', async (t) => {
      const { store, owner } = await openSession(LIMITS)
      const big = (seq: number): StoredEvent => ({ seq, kind: 'message', data: 'x'.repeat(1000) })
      for (let seq = 1; seq <= 5; seq++) await store.append(owner, 'post-1', big(seq))
      t.same((await store.read(owner, 'post-1', 0, 100, 2500))?.map((event) => event.seq), [1, 2, 3], 'cut once 2500 bytes are reached')
      t.same((await store.read(owner, 'post-1', 3, 100, 10))?.map((event) => event.seq), [4], 'one event even over the budget')
      t.same((await store.read(owner, 'post-1', 0, 2, 1_000_000))?.map((event) => event.seq), [1, 2], 'the count still bounds it')
    })

    t.test('read: an id past the last kept event, or at the end, is not held (null), never waited on', async (t) => {
      const { store, owner } = await openSession()
      for (const seq of [1, 2, 3]) await store.append(owner, 'post-1', message(seq))
      t.same(await store.read(owner, 'post-1', 3, 10), [], 'at the last event of a running stream: nothing new yet')
      t.equal(await store.read(owner, 'post-1', 4, 10), null, 'past it: an id the store never kept')
      t.equal(await store.read(owner, 'post-1', 900, 10), null, 'far past it')
      await store.append(owner, 'post-1', { seq: 4, kind: 'end', data: '' })
      t.same((await store.read(owner, 'post-1', 3, 10))?.map((event) => event.kind), ['end'], 'before the end: the end')
      t.equal(await store.read(owner, 'post-1', 4, 10), null, 'at the end: nothing will ever come')
    })

    t.test('byte limits: a stream and a session keep at most so much, then an end marker, then nothing', async (t) => {
      const payload = (seq: number, bytes: number): StoredEvent => ({ seq, kind: 'message', data: 'x'.repeat(bytes) })
      const { store, owner } = await openSession(limits({ maxBytesPerStream: KEPT_STREAM_OVERHEAD_BYTES + 3000, maxBytesPerSession: 2 * KEPT_STREAM_OVERHEAD_BYTES + 5000 }))
      t.equal(await store.append(owner, 'post-1', payload(1, 1000)), 'stored')
      t.equal(await store.append(owner, 'post-1', payload(2, 1000)), 'stored')
      t.equal(await store.append(owner, 'post-1', [payload(3, 500), payload(4, 1000)]), 'stream full', 'a batch past the stream\'s limit is refused whole')
      t.equal(await store.append(owner, 'post-1', payload(5, 1)), 'stream full', 'and everything after it')
      t.equal(await store.append(owner, 'post-1', { seq: 6, kind: 'end', data: '' }), 'stream full', 'its own end too: the store ended it where it stopped')
      const kept = await store.read(owner, 'post-1', 0, 10)
      t.same(kept?.map((event) => [event.seq, event.kind, event.kind === 'end' ? event.data : '']), [[1, 'message', ''], [2, 'message', ''], [3, 'end', NOT_KEPT]], 'the end marker sits where the refused events begin')
      t.equal(await store.read(owner, 'post-1', 4, 10), null, 'an id past it is not held')

      t.equal(await store.append(owner, 'post-2', payload(1, 2000)), 'stored', 'another stream of the session')
      t.equal(await store.append(owner, 'post-3', payload(1, 10)), 'session full', 'the session\'s limit counts every stream, with its overhead')
      t.equal(await store.read(owner, 'post-3', 0, 10), null, 'a stream whose first event was refused is not kept at all')
      t.equal(await store.append(owner, 'post-3', payload(2, 10)), 'stream gone', 'nor made by a later event')
      t.equal(await store.append(owner, 'post-2', payload(2, 950)), 'session full', 'a running stream stops at the session\'s limit too')
      t.same((await store.read(owner, 'post-2', 1, 10))?.map((event) => [event.kind, event.data]), [['end', NOT_KEPT]])
    })

    t.test('byte limits: what expired streams kept is given back to the session', async (t) => {
      const { store, owner, advance, interval } = await openSession(limits({ retention: 300, maxBytesPerSession: 2 * KEPT_STREAM_OVERHEAD_BYTES + 2000 }))
      t.equal(await store.append(owner, 'post-1', { seq: 1, kind: 'message', data: 'x'.repeat(1000) }), 'stored')
      t.equal(await store.append(owner, 'post-2', { seq: 1, kind: 'message', data: 'x'.repeat(1000) }), 'session full')
      advance(400)
      await eventually(async () => await store.read(owner, 'post-1', 0, 10) === null, { ...WAIT, interval, description: 'the first stream to expire' })
      t.equal(await store.append(owner, 'post-3', { seq: 1, kind: 'message', data: 'x'.repeat(1000) }), 'stored', 'room again')
    })

    t.test('renew: a stream whose writer runs is kept past its last append', async (t) => {
      const { store, owner, advance, interval } = await openSession(limits({ maxEvents: 100, retention: 600 }))
      t.equal(await store.renew(owner, 'post-1'), false, 'nothing to renew before the first append')
      await store.append(owner, 'post-1', message(1))
      for (let beat = 0; beat < 3; beat++) {
        // Real time for Redis (its TTL), the fake clock for memory: each beat comes before the retention ends.
        advance(400)
        if (interval > 0) await new Promise((resolve) => setTimeout(resolve, 400))
        t.equal(await store.renew(owner, 'post-1'), true)
      }
      t.same(await store.read(owner, 'post-1', 0, 10), [message(1)], 'kept well past 600 ms after its only append')
      advance(700)
      await eventually(async () => await store.read(owner, 'post-1', 0, 10) === null, { ...WAIT, interval, description: 'the stream to expire once no longer renewed' })
      t.equal(await store.renew(owner, 'post-1'), false)
    })

    t.test('removeSession: every stream of the session, only those', async (t) => {
      const { sessions, store, owner, keysOf } = await openSession(LIMITS, 'alice-hash')
      const neighbour = { sessionId: mintSessionId(), principal: 'alice-hash' }
      await sessions.create(neighbour.sessionId, { ...data, principal: 'alice-hash' })
      for (const stream of ['post-1', 'post-2', 'get']) await store.append(owner, stream, message(1))
      await store.append(neighbour, 'post-1', message(1))
      await store.removeSession(owner)
      for (const stream of ['post-1', 'post-2', 'get']) t.equal(await store.read(owner, stream, 0, 10), null, `${stream} removed`)
      t.same(await store.read(neighbour, 'post-1', 0, 10), [message(1)], 'another session of the same principal keeps its streams')
      if (keysOf !== undefined) {
        t.same(await keysOf(owner.sessionId), [`${sessionKey('streams-test:', owner.sessionId, 'alice-hash')}`], 'no stream key and no index left, only the session')
      }
      await store.removeSession(owner)
      t.pass('a second removal is harmless')
    })

    t.test('watch: told of appends by any replica; unsubscribed, told nothing more', async (t) => {
      const { other, store, owner } = await openSession()
      const otherStore = other.streamEvents(LIMITS)
      let told = 0
      let markers = 0
      const stop = await store.watch(owner, 'post-1', () => { told++ })
      await store.watch(owner, 'marker', () => { markers++ })
      await otherStore.append(owner, 'post-1', message(1))
      await eventually(() => told > 0, { ...WAIT, description: 'the watcher to hear the other replica\'s append' })
      await otherStore.append(owner, 'post-1', message(2))
      await eventually(() => told > 1, { ...WAIT, description: 'the watcher to hear the second append' })
      stop()
      stop()
      const before = told
      await otherStore.append(owner, 'post-1', message(3))
      // Appends from one replica are told in order: once the marker appended after seq 3 is heard,
      // seq 3 would have been heard too, had anyone still watched.
      await otherStore.append(owner, 'marker', message(1))
      await eventually(() => markers > 0, { ...WAIT, description: 'the marker stream\'s watcher' })
      t.equal(told, before, 'nothing after unsubscribing')
    })
  })
}

contract('memory', async () => {
  const clock = new FakeClock()
  const store = new MemorySessionStore(timeouts, clock.now)
  t.teardown(() => store.close())
  return { sessions: store, other: store, advance: (ms) => { clock.advance(ms) }, interval: 0 }
})

/** A resolved `redis` section, through the real validator. */
function redisConfig (section: Record<string, unknown>): RedisConfig {
  return validateConfig({ redis: section, routes: [{ path: '/mcp', upstream: 'http://u/mcp' }] }).redis as RedisConfig
}

let redis: TestRedis | undefined
let inspector: Redis | undefined
t.before(async () => {
  redis = await withRedis(t)
  inspector = redis.client()
})

async function redisStore (keyPrefix = 'streams-test:'): Promise<RedisSessionStore> {
  const store = new RedisSessionStore({ ...timeouts, redis: redisConfig({ url: (redis as TestRedis).url, keyPrefix }) })
  t.teardown(() => store.close())
  await store.ready()
  return store
}

contract('redis', async () => ({
  sessions: await redisStore(),
  other: await redisStore(),
  advance: () => {},
  interval: 25,
  keysOf: async (id) => (await (inspector as Redis).keys('streams-test:*')).filter((key) => key.includes(id))
}))

t.test('redis: stream keys and the index carry the retention as TTL, in the session\'s slot', async (t) => {
  const store = await redisStore()
  const client = inspector as Redis
  for (const principal of ['abcDEF123', undefined]) {
    const id = mintSessionId()
    await store.create(id, { ...data, principal })
    const streams = store.streamEvents(limits({ maxEvents: 10, retention: 30_000 }))
    await streams.append({ sessionId: id, principal }, 'post-1', message(1))
    const session = sessionKey('streams-test:', id, principal)
    const stream = streamKey('streams-test:', id, principal, 'post-1')
    const index = streamIndexKey('streams-test:', id, principal)
    const bytes = streamBytesKey('streams-test:', id, principal)
    t.equal(stream, `streams-test:stream:{${principal ?? session}}:${id}:post-1`)
    t.equal(index, `streams-test:streams:{${principal ?? session}}:${id}`)
    t.equal(bytes, `streams-test:streambytes:{${principal ?? session}}:${id}`)
    for (const key of [stream, index, bytes]) t.equal(hashTag(key), hashTag(session))
    for (const [name, key] of [['stream', stream], ['index', index], ['byte count', bytes]]) {
      const ttl = await client.pttl(key as string)
      t.ok(ttl > 29_000 && ttl <= 30_000, `${name as string} TTL is the retention (${ttl} ms)`)
    }
    t.same(await client.hgetall(bytes), { '': String(KEPT_STREAM_OVERHEAD_BYTES + keptBytes(message(1))), 'post-1': String(KEPT_STREAM_OVERHEAD_BYTES + keptBytes(message(1))) }, 'what the stream keeps, and the session\'s total')
    t.same(await client.xrange(stream, '-', '+'), [['0-1', ['k', 'message', 'd', message(1).data]]], 'entry id 0-<seq>, short fields')
  }
})

t.test('redis: removeSession with a key prefix of several-byte characters', async (t) => {
  const store = await redisStore('flüsse:')
  const owner = { sessionId: mintSessionId(), principal: 'abcDEF123' }
  await store.create(owner.sessionId, { ...data, principal: owner.principal })
  const streams = store.streamEvents(LIMITS)
  await streams.append(owner, 'post-1', message(1))
  await streams.removeSession(owner)
  t.equal(await (inspector as Redis).exists(streamKey('flüsse:', owner.sessionId, owner.principal, 'post-1'), streamIndexKey('flüsse:', owner.sessionId, owner.principal), streamBytesKey('flüsse:', owner.sessionId, owner.principal)), 0)
})

t.test('hashTag follows the Cluster rule', async (t) => {
  t.equal(hashTag('a{b}c'), 'b')
  t.equal(hashTag('a{b}{c}'), 'b', 'the first tag')
  t.equal(hashTag('a{}b{c}'), 'a{}b{c}', 'an empty first tag: the whole key')
  t.equal(hashTag('a{b'), 'a{b', 'no closing brace: the whole key')
  t.equal(hashTag('a}b{c}'), 'c', 'a closing brace before the opening one does not count')
  t.equal(hashTag('plain'), 'plain')
})

t.test('redis: a failing Redis rejects with MCPGW_SESSION_STORE_UNAVAILABLE, nothing of the keys in it', async (t) => {
  const store = new RedisSessionStore({ ...timeouts, redis: redisConfig({ url: `redis://127.0.0.1:${await freePort()}`, keyPrefix: 'down:', connectTimeout: '200ms' }) })
  t.teardown(() => store.close())
  const streams = store.streamEvents(LIMITS)
  const owner = { sessionId: mintSessionId(), principal: 'alice-hash' }
  for (const [what, attempt] of [
    ['append', streams.append(owner, 'post-1', message(1))],
    ['read', streams.read(owner, 'post-1', 0, 10)],
    ['removeSession', streams.removeSession(owner)]
  ] as const) {
    const error = await (attempt as Promise<unknown>).then(() => undefined, (failure: unknown) => failure)
    t.ok(error instanceof GatewayError && error.code === 'MCPGW_SESSION_STORE_UNAVAILABLE', `${what} rejects with the coded error`)
    const cause = (error as { cause?: unknown }).cause
    t.notOk(JSON.stringify({ message: (cause as Error | undefined)?.message, ...(cause as object) }).includes(owner.sessionId), `${what}: the cause does not carry the key`)
  }
})

t.test('redis: bytes per stored event', async (t) => {
  const store = await redisStore()
  const id = mintSessionId()
  await store.create(id, { ...data, principal: 'abcDEF123' })
  const streams = store.streamEvents(limits({ maxEvents: 1000, retention: 60_000 }))
  const owner = { sessionId: id, principal: 'abcDEF123' }
  const payload = (seq: number): string => JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: `token-${seq}`, progress: seq, total: 1000, message: 'x'.repeat(73) } })
  t.ok(payload(1).length >= 190 && payload(1).length <= 210, `a ~200-byte payload (${payload(1).length} bytes)`)
  await Promise.all(Array.from({ length: 1000 }, async (_, index) => await streams.append(owner, 'post-1', { seq: index + 1, kind: 'message', data: payload(index + 1) })))
  const bytes = await (inspector as Redis).call('MEMORY', 'USAGE', streamKey('streams-test:', id, 'abcDEF123', 'post-1'), 'SAMPLES', '0') as number
  t.equal((await streams.read(owner, 'post-1', 0, 2000))?.length, 1000)
  t.comment(`MEMORY USAGE of a stream of 1000 events of ${payload(1).length}-byte payloads: ${bytes} bytes, ${(bytes / 1000).toFixed(1)} bytes per event`)
})

t.test('redis cluster: streams and their index in the session\'s slot; append, read, removeSession', async (t) => {
  const cluster = await startTestCluster(3)
  t.teardown(() => cluster.close())
  const store = new RedisSessionStore({ ...timeouts, redis: redisConfig({ cluster: { nodes: [cluster.urls[0]] }, keyPrefix: 'mcpgw:' }) })
  t.teardown(() => store.close())
  await store.ready()
  const client = new Cluster([{ host: '127.0.0.1', port: (cluster.nodes[0] as TestRedis).port }])
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const streams = store.streamEvents(LIMITS)
  const watcher = store.streamEvents(LIMITS)
  for (const principal of ['abcDEF123', undefined]) {
    const owner = { sessionId: mintSessionId(), principal }
    await store.create(owner.sessionId, { ...data, principal })
    const session = sessionKey('mcpgw:', owner.sessionId, principal)
    const index = streamIndexKey('mcpgw:', owner.sessionId, principal)
    const slot = await client.cluster('KEYSLOT', session)
    const keys = ['post-1', 'post-2'].map((stream) => streamKey('mcpgw:', owner.sessionId, principal, stream))
    for (const key of [...keys, index]) t.equal(await client.cluster('KEYSLOT', key), slot, `${principal === undefined ? 'unbound' : 'bound'}: ${key === index ? 'index' : 'stream'} in the session's slot ${slot}`)
    let told = 0
    const stop = await watcher.watch(owner, 'post-1', () => { told++ })
    t.same(await Promise.all([1, 2, 3].map(async (seq) => await streams.append(owner, 'post-1', message(seq)))), ['stored', 'stored', 'stored'])
    await streams.append(owner, 'post-2', message(1))
    t.same((await streams.read(owner, 'post-1', 1, 10))?.map((event) => event.seq), [2, 3])
    await eventually(() => told > 0, { ...WAIT, description: 'the watcher to hear an append on the cluster' })
    stop()
    t.equal(await client.exists(...keys, index), 3)
    await streams.removeSession(owner)
    t.equal(await client.exists(...keys, index), 0, 'no stream and no index left')
    t.equal(await streams.read(owner, 'post-1', 0, 10), null)
    await store.terminateAny(owner.sessionId)
    t.equal(await streams.append(owner, 'post-1', message(4)), 'session gone', 'no append after the session ended')
  }
})
