import t from 'tap'
import type { Test } from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ElicitRequestSchema, ListRootsRequestSchema, ResourceUpdatedNotificationSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { MemorySessionStore } from '../src/sessions/memory-session-store.js'
import { eventually } from './helpers/eventually.js'
import { storeKinds, withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { startModernUpstream, type ModernUpstream } from './helpers/modern-upstream.js'
import type { TestRedis } from './helpers/redis-server.js'

/*
 * The era bridge (docs/era-bridge.md) with more than one gateway: the official v1 client in front of a modern-only SDK v2
 * upstream, through two gateway instances sharing the session store. A "balancer" sends the
 * client's tool calls and its GET stream to instance A and everything else (initialize, the
 * answers to the upstream's input requests, cancellations, subscriptions) to instance B: what B
 * hears must reach the stream A holds.
 */

async function twoGateways (t: Teardown, kind: 'memory' | 'redis', redis: TestRedis, upstream: ModernUpstream, prefix: string): Promise<[TestGateway, TestGateway]> {
  const route = { path: '/mcp', upstream: upstream.url, upstreamEra: 'modern', getStream: 'forward' }
  if (kind === 'redis') {
    const config = { redis: { url: redis.url, keyPrefix: prefix }, routes: [route] }
    return [await withGateway(t, { config }), await withGateway(t, { config })]
  }
  // One memory store shared in-process stands for what Redis shares between processes.
  const store = new MemorySessionStore({ idleTimeout: 60_000, maxLifetime: 600_000 })
  t.teardown(() => store.close())
  return [await withGateway(t, { config: { routes: [route] }, store }), await withGateway(t, { config: { routes: [route] }, store })]
}

type Sent = { readonly instance: 'A' | 'B', readonly method: string, readonly rpc: string }

/** A fetch that plays the load balancer: tool calls and GET streams to A, the rest to B. */
function balancer (a: TestGateway, b: TestGateway, sent: Sent[]): typeof fetch {
  return async (input, init) => {
    const body = typeof init?.body === 'string' ? init.body : ''
    const method = init?.method ?? 'GET'
    const toA = method === 'GET' || body.includes('"method":"tools/call"')
    const parsed = body === '' ? {} : JSON.parse(body) as { method?: string, result?: unknown, error?: unknown }
    sent.push({ instance: toA ? 'A' : 'B', method, rpc: parsed.method ?? (parsed.result !== undefined || parsed.error !== undefined ? 'response' : '') })
    const url = new URL(String(input instanceof Request ? input.url : input))
    const target = new URL(url.pathname + url.search, toA ? a.origin : b.origin)
    return await fetch(target, init)
  }
}

/** Passes once `check` holds (doing `act` before every attempt), fails after 10 s. */
async function assertEventually (t: Test, what: string, check: () => boolean | Promise<boolean>, act?: () => unknown): Promise<void> {
  const held = await eventually(async () => {
    await act?.()
    return await check()
  }, { timeout: 10_000, interval: 50, description: what }).catch((error: Error) => {
    t.fail(error.message)
    return false
  })
  if (held) t.pass(what)
}

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

for (const kind of storeKinds) {
  t.test(`${kind} store: a full bridged session across two gateway instances`, async (t) => {
    const upstream = await startModernUpstream('reject')
    t.teardown(() => upstream.close())
    const [a, b] = await twoGateways(t, kind, redis, upstream, `bridge-replicas-${kind}:`)
    const sent: Sent[] = []
    const transport = new StreamableHTTPClientTransport(new URL(`${b.origin}/mcp`), { fetch: balancer(a, b, sent) })
    const client = new Client({ name: 'legacy-client', version: '1.0.0' }, { capabilities: { elicitation: {}, roots: {} } })
    t.teardown(() => client.close())
    let elicitations = 0
    let decline = false
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      elicitations++
      t.match(request.params, { message: 'Deploy prod?' }, 'the embedded elicitation reaches the client as a server request')
      return decline ? { action: 'decline' } : { action: 'accept', content: { confirm: true } }
    })
    client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///srv/app', name: 'app' }] }))
    const updated: string[] = []
    let toolsChanged = 0
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => { updated.push(notification.params.uri) })
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => { toolsChanged++ })
    await client.connect(transport)
    t.ok(client.getServerCapabilities()?.resources?.subscribe, 'with a GET stream to bridge, subscriptions are advertised')

    t.test('lists and reads, bridged from instance B', async (t) => {
      t.ok((await client.listTools()).tools.some((tool) => tool.name === 'deploy'))
      t.match((await client.readResource({ uri: 'demo://greeting' })).contents, [{ text: 'Hello from the modern upstream' }])
    })

    t.test('a streamed tool: progress notifications arrive before the result', async (t) => {
      const progress: number[] = []
      const result = await client.callTool({ name: 'count', arguments: { n: 3 } }, undefined, { onprogress: (update) => { progress.push(update.progress) } })
      t.same(result.content, [{ type: 'text', text: 'counted to 3' }])
      t.same(progress, [1, 2, 3])
      t.equal((result as Record<string, unknown>).resultType, undefined, 'resultType is 2026-07-28 vocabulary: not passed to a legacy client')
    })

    t.test('input_required: elicitation then roots, answered through the other instance', async (t) => {
      const before = upstream.received.length
      const result = await client.callTool({ name: 'deploy', arguments: { env: 'prod' } })
      t.same(result.content, [{ type: 'text', text: 'deployed prod to file:///srv/app (state confirmed)' }])
      t.equal(elicitations, 1)
      const legs = upstream.received.slice(before).filter((received) => received.body.includes('"tools/call"')).map((received) => JSON.parse(received.body) as { id: unknown, params: Record<string, unknown> })
      t.equal(legs.length, 3, 'three upstream legs: the call and two retries')
      t.same(legs.map((leg) => leg.params.requestState), [undefined, 'asked', 'confirmed'], 'requestState echoed byte for byte')
      t.match(legs[1]?.params.inputResponses, { confirm: { action: 'accept', content: { confirm: true } } })
      t.match(legs[2]?.params.inputResponses, { roots: { roots: [{ uri: 'file:///srv/app' }] } })
      t.equal(new Set(legs.map((leg) => JSON.stringify(leg.id))).size, 3, 'every retry is a new request')
      const answers = sent.filter((entry) => entry.rpc === 'response')
      t.ok(answers.length >= 2 && answers.every((entry) => entry.instance === 'B'), 'the client\'s answers went to instance B')
      t.ok(sent.some((entry) => entry.rpc === 'tools/call' && entry.instance === 'A'), 'the call and its stream were on instance A')

      decline = true
      t.same((await client.callTool({ name: 'deploy', arguments: { env: 'prod' } })).content, [{ type: 'text', text: 'not deployed: decline' }])
    })

    t.test('logging/setLevel is answered at the edge and carried in _meta', async (t) => {
      await client.setLoggingLevel('warning')
      const before = upstream.received.length
      await client.callTool({ name: 'echo', arguments: { text: 'x' } })
      const call = upstream.received.slice(before).find((received) => received.body.includes('"tools/call"'))
      t.match(JSON.parse(call?.body ?? '{}'), { params: { _meta: { 'io.modelcontextprotocol/logLevel': 'warning' } } })
      t.notOk(upstream.received.some((received) => received.body.includes('"logging/setLevel"')), 'setLevel never reaches the upstream')
    })

    t.test('cancellation: notifications/cancelled on B ends the upstream call held by A', async (t) => {
      const cancel = new AbortController()
      const started = upstream.waitStarted()
      const call = client.callTool({ name: 'wait', arguments: {} }, undefined, { signal: cancel.signal }).then(() => 'completed', () => 'rejected')
      await started
      cancel.abort('changed my mind')
      t.equal(await call, 'rejected')
      await assertEventually(t, 'the upstream saw its request aborted', () => upstream.cancelledWaits() === 1)
      t.ok(sent.some((entry) => entry.rpc === 'notifications/cancelled' && entry.instance === 'B'))
    })

    t.test('subscriptions: kept in the session, served by subscriptions/listen on the GET stream', async (t) => {
      await client.subscribeResource({ uri: 'demo://greeting' })
      await assertEventually(t, 'a resource-updated notification reaches the client', () => updated.includes('demo://greeting'), () => { upstream.notify.resourceUpdated('demo://greeting') })
      await assertEventually(t, 'a list-changed notification reaches the client', () => toolsChanged > 0, () => { upstream.notify.toolsChanged() })
      t.ok(sent.some((entry) => entry.method === 'GET' && entry.instance === 'A'), 'the GET stream is on instance A, the subscribe went to B')
      const listens = upstream.received.filter((received) => received.body.includes('"subscriptions/listen"')).map((received) => JSON.parse(received.body) as { params: { notifications: Record<string, unknown> } })
      t.match(listens.at(-1)?.params.notifications, { toolsListChanged: true, resourceSubscriptions: ['demo://greeting'] })
      await client.unsubscribeResource({ uri: 'demo://greeting' })
      await assertEventually(t, 'the listen filter no longer names the resource', () => {
        const last = upstream.received.filter((received) => received.body.includes('"subscriptions/listen"')).at(-1)
        return last !== undefined && !last.body.includes('demo://greeting')
      })
    })

    t.test('DELETE on one instance: 404 on both', async (t) => {
      const sessionId = transport.sessionId as string
      await transport.terminateSession()
      for (const gateway of [a, b]) {
        const stale = new StreamableHTTPClientTransport(new URL(`${gateway.origin}/mcp`), { sessionId })
        const staleClient = new Client({ name: 'stale', version: '1' })
        t.teardown(() => staleClient.close())
        await staleClient.connect(stale)
        const refusal = await staleClient.listTools().then(() => undefined, (error: unknown) => error)
        t.ok(refusal instanceof StreamableHTTPError && refusal.code === 404)
      }
    })
  })
}
