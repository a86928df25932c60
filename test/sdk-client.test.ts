import t from 'tap'
import { isWellFormedSessionId } from '../src/sessions/session-id.js'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import type { TestRedis } from './helpers/redis-server.js'

/* The official SDK client completes a session through the gateway, and a terminated id is refused. */

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

for (const kind of storeKinds) {
  for (const responseMode of ['sse', 'json'] as const) {
    t.test(`${kind} store, ${responseMode} upstream: Client + StreamableHTTPClientTransport`, async (t) => {
      const upstream = await withUpstream(t, { responseMode })
      const gateway = await withGateway(t, { config: { ...redisSection(kind, redis), routes: [{ path: '/mcp', upstream: upstream.url }] } })
      const url = new URL(`${gateway.origin}/mcp`)

      const transport = new StreamableHTTPClientTransport(url)
      const client = new Client({ name: 'sdk-test-client', version: '1.0.0' })
      t.teardown(() => client.close())
      await client.connect(transport)
      const sessionId = transport.sessionId
      t.ok(sessionId !== undefined && isWellFormedSessionId(sessionId), 'the client holds the gateway-minted id')
      t.equal(client.getServerVersion()?.name, 'demo-upstream')

      const tools = await client.listTools()
      t.same(tools.tools.map((tool) => tool.name).sort(), ['add', 'echo', 'stream-two-messages'])
      const sum = await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })
      t.same(sum.content, [{ type: 'text', text: '3' }])
      const resource = await client.readResource({ uri: 'demo://greeting' })
      t.match(resource.contents, [{ text: 'Hello from the demo upstream' }])

      await transport.terminateSession()
      t.equal(transport.sessionId, undefined, 'terminateSession succeeded (the SDK clears the id only on success)')
      t.equal(await gateway.app.sessionStore.touch(sessionId as string), null, 'the session is gone from the store')

      // A client that reuses the terminated id gets a 404 error.
      const stale = new StreamableHTTPClientTransport(url, { sessionId })
      const staleClient = new Client({ name: 'stale-client', version: '1.0.0' })
      t.teardown(() => staleClient.close())
      // connect() with a sessionId skips initialize (SDK: reconnect to an existing session).
      await staleClient.connect(stale)
      const refusal = await staleClient.listTools().then(() => undefined, (error: unknown) => error)
      t.ok(refusal instanceof StreamableHTTPError, 'the SDK reports an HTTP error')
      t.equal((refusal as StreamableHTTPError).code, 404, 'with status 404')
    })
  }
}
