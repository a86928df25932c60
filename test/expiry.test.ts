import t from 'tap'
import type { Test } from 'tap'
import { validateConfig } from '../src/config/validate-config.js'
import { MemorySessionStore } from '../src/sessions/memory-session-store.js'
import { eventually } from './helpers/eventually.js'
import { FakeClock } from './helpers/fake-clock.js'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream, type StoreKind } from './helpers/fixtures.js'
import { openSession, post } from './helpers/mcp-http.js'
import type { TestRedis } from './helpers/redis-server.js'

/*
 * Idle timeout (sliding) and max lifetime end a session over HTTP; afterwards 404 (MCP spec,
 * Streamable HTTP transport, Session Management; docs/configuration.md, `sessions`). The memory
 * store runs on a fake clock the test moves; the Redis store on real TTLs, waited for with eventually().
 */

const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

interface ExpiryGateway {
  readonly url: string
  /** Moves the memory store's fake clock; nothing for Redis, whose TTLs run in real time. */
  advance (ms: number): void
  /** Milliseconds passed for the store since the gateway started. */
  elapsed (): number
  /** Whether the session is gone, read without sliding its idle timeout. */
  gone (sessionId: string): Promise<boolean>
  /** Poll interval for eventually(): 0 with a fake clock. */
  readonly interval: number
}

async function expiryGateway (t: Test, kind: StoreKind, keyPrefix: string, sessions: Record<string, string>): Promise<ExpiryGateway> {
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const config = { ...redisSection(kind, redis, keyPrefix), sessions, routes: [{ path: '/mcp', upstream: upstream.url }] }
  if (kind === 'redis') {
    const gateway = await withGateway(t, { config })
    const client = redis.client()
    const started = Date.now()
    return {
      url: `${gateway.origin}/mcp`,
      advance: () => {},
      elapsed: () => Date.now() - started,
      gone: async (sessionId) => await client.exists(`${keyPrefix}session:${sessionId}`) === 0,
      interval: 25
    }
  }
  const clock = new FakeClock()
  const store = new MemorySessionStore(validateConfig(config).sessions, clock.now)
  t.teardown(() => store.close())
  const gateway = await withGateway(t, { config, store })
  return {
    url: `${gateway.origin}/mcp`,
    advance: (ms) => { clock.advance(ms) },
    elapsed: () => clock.elapsed(),
    gone: async (sessionId) => await store.get(sessionId) === null,
    interval: 0
  }
}

for (const kind of storeKinds) {
  t.test(`${kind} store: requests slide the idle timeout`, async (t) => {
    const gateway = await expiryGateway(t, kind, `idle-${kind}:`, { idleTimeout: '600ms', maxLifetime: '1h' })
    const active = await openSession(gateway.url)
    const untouched = await openSession(gateway.url)
    // A request about every 250 ms (the fake clock's step, or the poll interval plus the request)
    // until a session opened with it and never used has expired, and at least 5 of them.
    let requests = 0
    await eventually(async () => {
      gateway.advance(250)
      requests++
      t.equal((await post(gateway.url, toolsList, active)).status, 200, `active session live at ${gateway.elapsed()} ms`)
      return requests >= 5 && await gateway.gone(untouched)
    }, { timeout: 10_000, interval: gateway.interval === 0 ? 0 : 150, description: 'the unused session to expire' })
    t.ok(gateway.elapsed() >= 600, `the active session outlived the 600 ms idle timeout (${gateway.elapsed()} ms)`)
  })

  t.test(`${kind} store: silence ends the session`, async (t) => {
    const gateway = await expiryGateway(t, kind, `silent-${kind}:`, { idleTimeout: '600ms', maxLifetime: '1h' })
    const idle = await openSession(gateway.url)
    gateway.advance(1250)
    await eventually(async () => await gateway.gone(idle), { timeout: 10_000, interval: gateway.interval, description: 'the 600 ms idle timeout' })
    const expired = await post(gateway.url, toolsList, idle)
    t.equal(expired.status, 404, `idle session ended after ${gateway.elapsed()} ms > 600 ms`)
    t.same(JSON.parse(expired.text), { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } })
  })

  t.test(`${kind} store: max lifetime ends an active session`, async (t) => {
    const gateway = await expiryGateway(t, kind, `life-${kind}:`, { idleTimeout: '1h', maxLifetime: '700ms' })
    const sessionId = await openSession(gateway.url)
    t.equal((await post(gateway.url, toolsList, sessionId)).status, 200)
    gateway.advance(300)
    t.equal((await post(gateway.url, toolsList, sessionId)).status, 200)
    gateway.advance(600)
    // Used on every poll: activity does not keep it past its lifetime. The first answer that is not a
    // 200 must be the 404.
    const status = await eventually(async () => {
      const answer = (await post(gateway.url, toolsList, sessionId)).status
      return answer !== 200 && answer
    }, { timeout: 10_000, interval: gateway.interval, description: 'the 700 ms lifetime to end' })
    t.equal(status, 404, `ended ${gateway.elapsed()} ms after creation with a 700 ms lifetime`)
  })
}
