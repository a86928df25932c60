import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ElicitRequestSchema, ToolListChangedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { eventually } from './helpers/eventually.js'
import type { Teardown } from './helpers/fixtures.js'
import { initializeRequest, post, request } from './helpers/mcp-http.js'
import { openStream } from './helpers/sse-stream.js'
import { startStatefulUpstream, type StatefulUpstream, type StatefulUpstreamOptions } from './helpers/stateful-upstream.js'

/*
 * The stateful upstream fixture, straight from the official SDK v1 client (no gateway): its
 * sessions hold state, a server-to-client request comes back to it, and a kill loses every session
 * (a restart on the same port answers 404 for the old id).
 */

const WAIT = { timeout: 10_000 }

interface Connected {
  readonly client: Client
  readonly transport: StreamableHTTPClientTransport
  readonly sessionId: string
  readonly listChanged: Promise<void>
}

async function withStatefulUpstream (t: Teardown, options: StatefulUpstreamOptions): Promise<StatefulUpstream> {
  const upstream = await startStatefulUpstream(options)
  t.teardown(() => upstream.close())
  return upstream
}

async function connect (t: Teardown, upstream: StatefulUpstream): Promise<Connected> {
  const transport = new StreamableHTTPClientTransport(new URL(upstream.url))
  const client = new Client({ name: 'fixture-test', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } })
  t.teardown(() => client.close())
  client.setRequestHandler(ElicitRequestSchema, async (request) => ({ action: 'accept', content: { answer: `answer to ${request.params.message}` } }))
  const listChanged = new Promise<void>((resolve) => {
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => { resolve() })
  })
  await client.connect(transport)
  if (transport.sessionId === undefined) throw new Error('the upstream minted no session')
  return { client, transport, sessionId: transport.sessionId, listChanged }
}

async function callText (client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const result = await client.callTool({ name, arguments: args }) as CallToolResult
  const first = result.content[0]
  return first?.type === 'text' ? first.text : ''
}

t.test('sessions hold their state and ask the client through the SDK v1 client', async (t) => {
  const upstream = await withStatefulUpstream(t, { name: 'a' })
  const first = await connect(t, upstream)
  const second = await connect(t, upstream)
  t.same(upstream.sessions().sort(), [first.sessionId, second.sessionId].sort(), 'one upstream session per client')
  t.equal(upstream.initializeCount(), 2)

  t.same(JSON.parse(await callText(first.client, 'whoami')), { instance: 'a', upstreamSessionId: first.sessionId })
  t.equal(await callText(first.client, 'count'), '1')
  t.equal(await callText(first.client, 'count'), '2')
  t.equal(await callText(second.client, 'count'), '1', 'the counter is per session')

  t.same(JSON.parse(await callText(first.client, 'ask', { message: 'colour?' })), { answer: 'answer to colour?' })
  t.ok(upstream.requests.some((entry) => entry.method === 'POST' && entry.sessionId === first.sessionId && entry.rpcMethod === undefined),
    'the client\'s answer came back as a POST to this instance')

  await first.client.setLoggingLevel('debug')
  await first.client.subscribeResource({ uri: 'test://r' })
  t.same(upstream.levels(first.sessionId), ['debug'])
  t.same(upstream.subscriptions(first.sessionId), ['test://r'])
  t.same(upstream.subscriptions(second.sessionId), [])

  // The SDK client opens the standalone GET stream after initialize; the notification goes there.
  await eventually(() => upstream.requests.some((entry) => entry.method === 'GET' && entry.sessionId === first.sessionId), { ...WAIT, description: 'the GET stream' })
  t.equal(await callText(first.client, 'notify_changed'), 'sent')
  await first.listChanged

  await first.transport.terminateSession()
  t.same(upstream.deleted, [first.sessionId], 'DELETE ended the session')
  t.same(upstream.sessions(), [second.sessionId])
})

t.test('plain HTTP: 400 without a session id, 404 for an unknown one', async (t) => {
  const upstream = await withStatefulUpstream(t, { name: 'b' })
  const listTools = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
  t.equal((await post(upstream.url, listTools)).status, 400)
  const unknown = await post(upstream.url, listTools, 'no-such-session')
  t.equal(unknown.status, 404)
  t.same(JSON.parse(unknown.text), { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null })
  t.equal((await request(upstream.url, { method: 'GET', headers: { 'mcp-session-id': 'no-such-session' } })).status, 404)
  t.equal((await request(upstream.url, { method: 'DELETE', headers: { 'mcp-session-id': 'no-such-session' } })).status, 404)
  t.same(upstream.requests.map((entry) => [entry.method, entry.rpcMethod]), [['POST', 'tools/list'], ['POST', 'tools/list'], ['GET', undefined], ['DELETE', undefined]])
  t.equal(upstream.initializeCount(), 0)
})

t.test('kill cuts an in-flight call and loses the sessions; a restart answers 404 for them', async (t) => {
  const upstream = await withStatefulUpstream(t, { name: 'c' })
  const { client, sessionId } = await connect(t, upstream)
  t.equal(await callText(client, 'count'), '1')

  const inFlight = await openStream(upstream.url, {
    method: 'POST',
    headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', 'mcp-session-id': sessionId },
    body: JSON.stringify({ jsonrpc: '2.0', id: 'slow-1', method: 'tools/call', params: { name: 'slow', arguments: { ms: 30_000 }, _meta: { progressToken: 'p' } } })
  })
  t.teardown(() => { inFlight.cut() })
  await inFlight.waitFor(1)
  t.match(JSON.parse(inFlight.events[0]?.data ?? '{}'), { method: 'notifications/progress', params: { progressToken: 'p' } })

  await upstream.kill()
  await inFlight.ended
  t.equal(inFlight.events.length, 1, 'the stream was cut before any result')
  t.same(upstream.sessions(), [])
  await t.rejects(client.callTool({ name: 'count', arguments: {} }), 'a call to a killed instance fails')

  await upstream.restart()
  t.same(upstream.sessions(), [], 'the restarted instance holds no session')
  const stale = await post(upstream.url, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, sessionId)
  t.equal(stale.status, 404, 'the old session id is unknown after the restart')
  const refusal = await client.callTool({ name: 'count', arguments: {} }).then(() => undefined, (error: unknown) => error)
  t.ok(refusal instanceof StreamableHTTPError && refusal.code === 404, 'the SDK client sees 404 for its session')

  const fresh = await post(upstream.url, initializeRequest())
  t.equal(fresh.status, 200, 'the restarted instance serves new sessions on the same port')
  t.equal(upstream.sessions().length, 1)
  t.equal(upstream.initializeCount(), 2, 'counted across the restart')
})
