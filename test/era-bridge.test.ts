import t from 'tap'
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { modernClientCapabilities, toModernRequest } from '../src/bridge/modern-envelope.js'
import { redisSection, storeKinds, withGateway, withRedis } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import { startModernUpstream } from './helpers/modern-upstream.js'
import type { TestRedis } from './helpers/redis-server.js'

/*
 * The era bridge (docs/era-bridge.md): legacy clients get full sessions in front of a modern-only (2026-07-28) upstream:
 * initialize answered from server/discover, every later request bridged. Rounds, cancellation and
 * the GET stream across replicas: era-bridge-replicas.test.ts; the edges: era-bridge-rounds.test.ts.
 */

t.test('a legacy request becomes a modern one: envelope and mirrored headers', async (t) => {
  const identity = { clientInfo: { name: 'c', version: '1' }, clientCapabilities: { roots: {} } }
  const call = toModernRequest({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' }, _meta: { progressToken: 7 } } }, identity)
  t.same(JSON.parse(call.body), {
    jsonrpc: '2.0',
    id: 4,
    method: 'tools/call',
    params: {
      name: 'echo',
      arguments: { text: 'x' },
      _meta: { progressToken: 7, 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 'c', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': { roots: {} } }
    }
  }, 'the client identity comes from the session; the client\'s own _meta is kept')
  t.same(call.headers, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'echo' })
  const withLevel = toModernRequest({ jsonrpc: '2.0', id: 8, method: 'tools/list' }, { ...identity, clientCapabilities: { elicitation: {} }, logLevel: 'error' })
  t.match(JSON.parse(withLevel.body).params._meta, { 'io.modelcontextprotocol/logLevel': 'error', 'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } } },
    'the level set at the edge; a legacy elicitation: {} is form mode')
  t.same(modernClientCapabilities({ elicitation: { url: {} } }), { elicitation: { url: {} } }, 'explicit modes are kept')
  t.same(modernClientCapabilities(null), {})
  const unicode = toModernRequest({ jsonrpc: '2.0', id: 5, method: 'resources/read', params: { uri: 'file:///Grüße.txt' } }, identity)
  t.equal(unicode.headers['mcp-name'], `=?base64?${Buffer.from('file:///Grüße.txt').toString('base64')}?=`, 'non-ASCII names use the Base64 form')
  t.equal(toModernRequest({ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: ' padded ' } }, identity).headers['mcp-name'], `=?base64?${Buffer.from(' padded ').toString('base64')}?=`)
  t.equal(toModernRequest({ jsonrpc: '2.0', id: 7, method: 'tools/list' }, identity).headers['mcp-name'], undefined)
})

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

for (const kind of storeKinds) {
  for (const upstreamEra of ['modern', 'auto'] as const) {
    t.test(`${kind} store, upstreamEra ${upstreamEra}: the official v1 client has a full session with a modern-only upstream`, async (t) => {
      const upstream = await startModernUpstream('reject')
      t.teardown(() => upstream.close())
      const gateway = await withGateway(t, { config: { ...redisSection(kind, redis, `bridge-${kind}-${upstreamEra}:`), routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra }] } })
      const url = new URL(`${gateway.origin}/mcp`)

      const direct = await post(upstream.url, initializeRequest(1))
      t.equal(direct.status, 400, 'the upstream itself refuses legacy clients')
      const sentBeforeConnect = upstream.received.length

      const transport = new StreamableHTTPClientTransport(url)
      const client = new Client({ name: 'legacy-client', version: '1.2.3' }, { capabilities: { roots: { listChanged: true } } })
      t.teardown(() => client.close())
      await client.connect(transport)
      const sessionId = transport.sessionId as string
      t.equal(client.getServerVersion()?.name, 'modern-upstream', 'serverInfo from server/discover')
      t.notOk(client.getServerCapabilities()?.resources?.subscribe, 'without a GET stream to relay them on (getStream: reject), subscriptions are not advertised')
      t.match(await gateway.app.sessionStore.get(sessionId), { protocolVersion: '2025-11-25', clientInfo: { name: 'legacy-client', version: '1.2.3' } })

      t.ok((await client.listTools()).tools.some((tool) => tool.name === 'echo'))
      t.same((await client.callTool({ name: 'echo', arguments: { text: 'bridged' } })).content, [{ type: 'text', text: 'bridged' }])
      t.match((await client.readResource({ uri: 'demo://greeting' })).contents, [{ text: 'Hello from the modern upstream' }])
      t.match((await client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } })).messages, [{ content: { text: 'Hello Ada' } }])
      t.same(await client.ping(), {}, 'ping is answered by the gateway')
      await client.setLoggingLevel('info').catch(() => undefined)

      const bridged = upstream.received.filter((received) => received.body.includes('"tools/call"'))
      t.equal(bridged.length, 1)
      const sent = bridged[0]
      t.equal(sent?.headers['mcp-protocol-version'], '2026-07-28')
      t.equal(sent?.headers['mcp-method'], 'tools/call')
      t.equal(sent?.headers['mcp-name'], 'echo')
      t.equal(sent?.headers['mcp-session-id'], undefined)
      t.match(JSON.parse(sent?.body ?? '{}'), { params: { _meta: { 'io.modelcontextprotocol/clientInfo': { name: 'legacy-client', version: '1.2.3' }, 'io.modelcontextprotocol/clientCapabilities': { roots: { listChanged: true } } } } })
      t.notOk(upstream.received.slice(sentBeforeConnect).some((received) => received.body.includes('"initialize"')), 'through the gateway, initialize never reaches the modern upstream')

      await transport.terminateSession()
      const stale = new StreamableHTTPClientTransport(url, { sessionId })
      const staleClient = new Client({ name: 'stale', version: '1' })
      t.teardown(() => staleClient.close())
      await staleClient.connect(stale)
      const refusal = await staleClient.listTools().then(() => undefined, (error: unknown) => error)
      t.ok(refusal instanceof StreamableHTTPError && refusal.code === 404, 'DELETE then 404')
    })
  }
}

t.test('modern clients on the same route still pass straight through', async (t) => {
  const upstream = await startModernUpstream('reject')
  t.teardown(() => upstream.close())
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const client = new ClientV2({ name: 'modern-client', version: '2.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } })
  t.teardown(() => client.close())
  const transport = new TransportV2(new URL(`${gateway.origin}/mcp`))
  await client.connect(transport)
  t.equal(transport.sessionId, undefined)
  t.same((await client.callTool({ name: 'echo', arguments: { text: 'direct' } })).content, [{ type: 'text', text: 'direct' }])
})

t.test('a modern upstream that cannot be reached: initialize gets 502 and mints nothing', async (t) => {
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:1/mcp', upstreamEra: 'modern' }] } })
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(3))
  t.equal(answer.status, 502)
  t.equal(answer.headers.get('mcp-session-id'), null)
  t.match(JSON.parse(answer.text), { id: 3, error: { code: -32603 } })
})
