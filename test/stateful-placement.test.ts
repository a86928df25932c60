import t from 'tap'
import { parseClientPost } from '../src/mcp/json-rpc.js'
import { MemorySessionStore } from '../src/sessions/memory-session-store.js'
import { mintSessionId } from '../src/sessions/session-id.js'
import { mayRunTwice, neverReachedInstance } from '../src/stateful/failover-rules.js'
import { FORGETFUL_BACKOFF_MS, PASSIVE_EJECTION_MS, UpstreamInstances, type UpstreamInstance } from '../src/stateful/upstream-instances.js'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { eventually } from './helpers/eventually.js'
import { FakeClock } from './helpers/fake-clock.js'

/*
 * Where a stateful route places a new session and when a request may run twice
 * (docs/stateful-upstreams.md): decisions without network (the instances' pools never connect),
 * and the active health check against a local HTTP server.
 */

const urls = ['http://a:3000/mcp', 'http://b:3000/mcp', 'http://c:3000/mcp']

function instancesFor (t: { teardown: (fn: () => unknown) => void }, balance: 'leastSessions' | 'roundRobin', clock = new FakeClock()): { instances: UpstreamInstances, store: MemorySessionStore, health: Array<[string, boolean]> } {
  const store = new MemorySessionStore({ idleTimeout: 60_000, maxLifetime: 3_600_000 }, clock.now)
  const health: Array<[string, boolean]> = []
  const instances = new UpstreamInstances({
    urls, balance, route: '/mcp', store, headersTimeout: 1_000, maxResponseBytes: 1024, healthCheck: null,
    onHealthChanged: (instance, healthy) => { health.push([instance.key, healthy]) },
    now: clock.now
  })
  t.teardown(async () => {
    await instances.close()
    await store.close()
  })
  return { instances, store, health }
}

async function placed (instances: UpstreamInstances, count: number, excluded?: ReadonlySet<string>): Promise<string[]> {
  const names: string[] = []
  for (let index = 0; index < count; index++) names.push(new URL((await instances.place(excluded) as UpstreamInstance).key).hostname)
  return names
}

t.test('roundRobin takes the instances in turn, skipping the excluded', async (t) => {
  const { instances } = instancesFor(t, 'roundRobin')
  t.same(await placed(instances, 4), ['a', 'b', 'c', 'a'])
  const withoutB = await placed(instances, 4, new Set(['http://b:3000/mcp']))
  t.same([...new Set(withoutB)].sort(), ['a', 'c'], 'b is never chosen, a and c both are')
  t.equal(await instances.place(new Set(urls)), undefined, 'nothing left: undefined')
})

t.test('leastSessions takes the instance with the fewest live sessions in the store', async (t) => {
  const { instances, store } = instancesFor(t, 'leastSessions')
  const data = { route: '/mcp', protocolVersion: '2025-11-25', clientInfo: null, clientCapabilities: null }
  await store.create(mintSessionId(), { ...data, upstream: { instance: 'http://a:3000/mcp', sessionId: '1' } })
  await store.create(mintSessionId(), { ...data, upstream: { instance: 'http://a:3000/mcp', sessionId: '2' } })
  await store.create(mintSessionId(), { ...data, upstream: { instance: 'http://c:3000/mcp', sessionId: '3' } })
  t.same(await placed(instances, 3), ['b', 'b', 'b'], 'b holds none')
  await store.create(mintSessionId(), { ...data, upstream: { instance: 'http://b:3000/mcp', sessionId: '4' } })
  await store.create(mintSessionId(), { ...data, upstream: { instance: 'http://b:3000/mcp', sessionId: '5' } })
  t.same(await placed(instances, 1), ['c'], 'now c holds the fewest')
})

t.test('an ejected instance is placed again once its passive ejection runs out; with nothing healthy, any is tried', async (t) => {
  const clock = new FakeClock()
  const { instances, health } = instancesFor(t, 'roundRobin', clock)
  const [a, b, c] = instances.all as [UpstreamInstance, UpstreamInstance, UpstreamInstance]
  instances.eject(b, 'test')
  t.same(health.slice(-1), [['http://b:3000/mcp', false]], 'told once')
  t.same(await placed(instances, 4), ['a', 'c', 'a', 'c'])
  t.notOk(instances.shouldLeave(b), 'a passive ejection only keeps new sessions away: b\'s sessions stay until their own request fails')
  instances.eject(a, 'test')
  instances.eject(c, 'test')
  t.ok(await instances.place() !== undefined, 'nothing healthy: placed anyway')
  instances.answered(a)
  t.ok(instances.isHealthy(a), 'an answer ends a passive ejection')
  clock.advance(PASSIVE_EJECTION_MS)
  t.ok(instances.isHealthy(b), 'the ejection ran out')
  t.same(health.slice(-1), [['http://b:3000/mcp', true]])
})

t.test('an instance that forgets fresh sessions is left out of placement, longer each time in a row, until it keeps one', async (t) => {
  const clock = new FakeClock()
  const { instances, health } = instancesFor(t, 'roundRobin', clock)
  const [a, b, c] = instances.all as [UpstreamInstance, UpstreamInstance, UpstreamInstance]
  instances.forgotFreshSession(b)
  instances.forgotFreshSession(b)
  t.same(health.filter(([key]) => key === b.key), [[b.key, true], [b.key, false]], 'told once, however many requests found it')
  t.same(await placed(instances, 4), ['a', 'c', 'a', 'c'], 'no new session or move goes there')
  t.ok(instances.anyForgetting())
  instances.answered(b)
  t.notOk(instances.isHealthy(b), 'an answer is no proof: its 404s are answers')
  clock.advance(FORGETFUL_BACKOFF_MS.first - 1)
  t.notOk(instances.isHealthy(b))
  clock.advance(1)
  t.ok(instances.isHealthy(b), 'placed again once the first backoff ran out')
  instances.forgotFreshSession(b)
  clock.advance(FORGETFUL_BACKOFF_MS.first)
  t.notOk(instances.isHealthy(b), 'forgetting again in a row: twice as long')
  clock.advance(FORGETFUL_BACKOFF_MS.first)
  t.ok(instances.isHealthy(b))
  instances.keptSession(b)
  instances.forgotFreshSession(b)
  clock.advance(FORGETFUL_BACKOFF_MS.first)
  t.ok(instances.isHealthy(b), 'after a session it kept, the next backoff is the first again')
  for (let time = 0; time < 10; time++) {
    instances.forgotFreshSession(b)
    clock.advance(FORGETFUL_BACKOFF_MS.most)
  }
  t.ok(instances.isHealthy(b), 'never longer than the most')
  instances.forgotFreshSession(a)
  instances.forgotFreshSession(b)
  instances.forgotFreshSession(c)
  t.equal(await instances.place(), undefined, 'all left out: nothing is placed, not even as a last resort')
})

t.test('what may run twice after its instance failed', async (t) => {
  const post = (body: unknown): ReturnType<typeof parseClientPost> => parseClientPost(JSON.stringify(body))
  for (const method of ['ping', 'tools/list', 'resources/list', 'resources/read', 'resources/templates/list', 'prompts/list', 'prompts/get', 'completion/complete']) {
    t.ok(mayRunTwice(post({ jsonrpc: '2.0', id: 1, method }), false), `${method} has no effects`)
  }
  t.notOk(mayRunTwice(post({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } }), false), 'a tools/call may not')
  t.ok(mayRunTwice(post({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } }), true), 'unless retryToolCalls')
  t.notOk(mayRunTwice(post({ jsonrpc: '2.0', id: 1, method: 'resources/subscribe', params: { uri: 'x' } }), true), 'nor any other request')
  t.ok(mayRunTwice(post({ jsonrpc: '2.0', method: 'notifications/initialized' }), false), 'a notification may')
  t.ok(mayRunTwice(post({ jsonrpc: '2.0', id: 5, result: {} }), false), 'an answer may (a new instance ignores it)')
  t.notOk(mayRunTwice(post([{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'x' } }]), false), 'a batch only if all of it may')

  t.ok(neverReachedInstance(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })), 'a refused connection never reached it')
  t.ok(neverReachedInstance(new Error('wrapped', { cause: Object.assign(new Error('timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }) })), 'found among the causes')
  t.notOk(neverReachedInstance(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), 'a reset may come after the instance read it')
  t.notOk(neverReachedInstance(Object.assign(new Error('closed'), { code: 'UND_ERR_SOCKET' })), 'so may a closed socket')
})

t.test('an instance that fails its health check loses its sessions and its streams, until it answers again', async (t) => {
  let answering = true
  const server = createServer((request, response) => {
    // /mcp always answers; /other only while `answering`.
    if (answering || request.url === '/mcp') response.writeHead(400).end()
    else request.socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const live = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`
  const flaky = `http://127.0.0.1:${(server.address() as AddressInfo).port}/other`
  const store = new MemorySessionStore({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
  const health: Array<[string, boolean]> = []
  const instances = new UpstreamInstances({
    urls: [live, flaky], balance: 'roundRobin', route: '/mcp', store, headersTimeout: 1_000, maxResponseBytes: 1024, healthCheck: { interval: 20, failureThreshold: 3 },
    onHealthChanged: (instance, healthy) => { health.push([instance.key, healthy]) }
  })
  t.teardown(async () => {
    await instances.close()
    await store.close()
  })
  const [first, second] = instances.all as [UpstreamInstance, UpstreamInstance]
  let cut = 0
  instances.whileInFlight(second, () => { cut++ })
  const done = instances.whileInFlight(second, () => { cut += 100 })
  done()
  answering = false
  await eventually(() => cut > 0, { timeout: 5_000, description: 'the failed check to cut what is in flight on the instance' })
  t.equal(cut, 1, 'what is still in flight is cut, once; what was done is not')
  t.notOk(instances.isHealthy(second))
  t.ok(instances.isHealthy(first))
  t.ok(instances.shouldLeave(second), 'its sessions move to the healthy one')
  t.same(await instances.place(), first, 'and new ones go there')
  answering = true
  await eventually(() => instances.isHealthy(second), { timeout: 5_000, description: 'the next check to bring it back' })
  t.notOk(instances.shouldLeave(second))
  t.same(health.filter(([key]) => key === second.key).map(([, healthy]) => healthy), [true, false, true], 'told as it changes, once each')
})

t.test('failed checks give an instance up only several in a row with no byte from it meanwhile', async (t) => {
  let streaming = true
  let checks = 0
  const server = createServer((request, response) => {
    if (request.method === 'GET') {
      // Every health check of /other fails; /mcp's answer.
      checks++
      if (request.url === '/mcp') response.writeHead(400).end()
      else request.socket.destroy()
      return
    }
    // A POST streams a chunk every 10 ms while `streaming`: bytes from the instance.
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    const timer = setInterval(() => {
      if (streaming) response.write(': tick\n\n')
      else { clearInterval(timer); response.end() }
    }, 10)
    response.once('close', () => { clearInterval(timer) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const port = (server.address() as AddressInfo).port
  const store = new MemorySessionStore({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
  const health: Array<[string, boolean]> = []
  const instances = new UpstreamInstances({
    urls: [`http://127.0.0.1:${port}/mcp`, `http://127.0.0.1:${port}/other`], balance: 'roundRobin', route: '/mcp', store, headersTimeout: 1_000, maxResponseBytes: 1024,
    healthCheck: { interval: 100, failureThreshold: 3 },
    onHealthChanged: (instance, healthy) => { health.push([instance.key, healthy]) }
  })
  t.teardown(async () => {
    await instances.close()
    await store.close()
  })
  const second = instances.all[1] as UpstreamInstance
  const answer = await second.client.postBytes({ 'content-type': 'application/json' }, '{}')
  let cut = 0
  const done = instances.whileInFlight(second, () => { cut++; answer.body.destroy() })
  const read = (async () => { for await (const chunk of answer.body) void chunk })().catch(() => undefined)
  await eventually(() => checks >= 16, { timeout: 10_000, description: 'many failed checks while the instance streams' })
  t.ok(instances.isHealthy(second), 'still healthy: its bytes reset the count of failed checks')
  t.equal(cut, 0, 'and the stream it sends is not cut')
  streaming = false
  await read
  done()
  await eventually(() => !instances.isHealthy(second), { timeout: 10_000, description: 'the silent instance to be given up' })
  t.same(health.filter(([key]) => key === second.key).map(([, healthy]) => healthy), [true, false], 'given up once, once silent')
})
