import t from 'tap'
import { isWellFormedSessionId } from '../src/sessions/session-id.js'
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client'
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { withGateway, withRedis, withUpstream, type Teardown } from './helpers/fixtures.js'
import { startModernUpstream } from './helpers/modern-upstream.js'
import type { TestRedis } from './helpers/redis-server.js'

/*
 * Both protocol eras (docs/era-bridge.md): the official v1 client (@modelcontextprotocol/sdk) and the v2 client
 * (@modelcontextprotocol/client) complete a session through the gateway: connect, list, call a
 * streamed tool, terminate. Against the gateway with real Redis and a stateless SSE upstream.
 */

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

async function legacyGateway (t: Teardown): Promise<{ url: URL, sessionLive: (id: string) => Promise<boolean> }> {
  const upstream = await withUpstream(t, { responseMode: 'sse' })
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'interop:' }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  return { url: new URL(`${gateway.origin}/mcp`), sessionLive: async (id) => (await gateway.app.sessionStore.get(id)) !== null }
}

t.test('v1 client: a whole session with a streamed tool call', async (t) => {
  const { url, sessionLive } = await legacyGateway(t)
  const transport = new TransportV1(url)
  const client = new ClientV1({ name: 'interop-v1', version: '1.0.0' })
  t.teardown(() => client.close())
  const logged: unknown[] = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => { logged.push(notification.params.data) })
  await client.connect(transport)
  const sessionId = transport.sessionId as string
  t.ok(await sessionLive(sessionId))
  t.ok((await client.listTools()).tools.some((tool) => tool.name === 'stream-two-messages'))
  const result = await client.callTool({ name: 'stream-two-messages', arguments: { gapMs: 50 } })
  t.same(result.content, [{ type: 'text', text: 'done' }])
  t.same(logged, ['first message', 'second message'], 'both streamed notifications reached the client before the result')
  await transport.terminateSession()
  t.notOk(await sessionLive(sessionId), 'terminated')
})

t.test('v2 client (default legacy negotiation): a whole session with a streamed tool call', async (t) => {
  const { url, sessionLive } = await legacyGateway(t)
  const transport = new TransportV2(url)
  const client = new ClientV2({ name: 'interop-v2', version: '2.0.0' })
  t.teardown(() => client.close())
  const logged: unknown[] = []
  client.setNotificationHandler('notifications/message', (notification) => { logged.push(notification.params.data) })
  await client.connect(transport)
  const sessionId = transport.sessionId as string
  t.ok(isWellFormedSessionId(sessionId))
  t.ok(await sessionLive(sessionId))
  t.ok((await client.listTools()).tools.some((tool) => tool.name === 'stream-two-messages'))
  const result = await client.callTool({ name: 'stream-two-messages', arguments: { gapMs: 50 } })
  t.same(result.content, [{ type: 'text', text: 'done' }])
  t.same(logged, ['first message', 'second message'])
  await transport.terminateSession()
  t.notOk(await sessionLive(sessionId), 'terminated')
})

t.test("v2 client with 'auto' negotiation in front of a legacy upstream falls back to a gateway session", async (t) => {
  const { url, sessionLive } = await legacyGateway(t)
  const transport = new TransportV2(url)
  const client = new ClientV2({ name: 'interop-v2-auto', version: '2.0.0' }, { versionNegotiation: { mode: 'auto' } })
  t.teardown(() => client.close())
  await client.connect(transport)
  const sessionId = transport.sessionId
  t.ok(sessionId !== undefined && await sessionLive(sessionId), 'the modern probe was refused upstream; initialize minted a session')
  t.same((await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })).content, [{ type: 'text', text: '42' }])
  await transport.terminateSession()
})

t.test('v2 client pinned to 2026-07-28 in front of a dual-era upstream: stateless, no session', async (t) => {
  const upstream = await startModernUpstream('stateless')
  t.teardown(() => upstream.close())
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'interop-modern:' }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const transport = new TransportV2(new URL(`${gateway.origin}/mcp`))
  const client = new ClientV2({ name: 'interop-modern', version: '2.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } })
  t.teardown(() => client.close())
  await client.connect(transport)
  t.equal(transport.sessionId, undefined, 'no session in the modern era')
  t.ok((await client.listTools()).tools.some((tool) => tool.name === 'echo'))
  t.same((await client.callTool({ name: 'echo', arguments: { text: 'modern' } })).content, [{ type: 'text', text: 'modern' }])
  t.same(await redis.client().keys('interop-modern:*'), [], 'nothing stored')
  const requests = gateway.logs.filter((line) => line.msg === 'request completed')
  t.ok(requests.length > 0 && requests.every((line) => line.era === 'modern' && line.status === 200), 'every request went the modern way')
})
