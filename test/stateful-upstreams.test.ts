import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ElicitRequestSchema, ToolListChangedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect as connectTcp, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, openSession, post } from './helpers/mcp-http.js'
import { metricsText, sample } from './helpers/metrics.js'
import { startRoundRobinProxy, type RoundRobinProxy } from './helpers/round-robin-proxy.js'
import { startStatefulUpstream, type StatefulUpstream } from './helpers/stateful-upstream.js'
import { startTestRedis, type TestRedis } from './helpers/redis-server.js'

/*
 * Stateful upstreams (docs/stateful-upstreams.md), with real processes only: two instances of a
 * stateful official-SDK v1 server, two gateway replicas sharing a real Redis, and the official v1
 * client going through a round-robin balancer across the replicas (no sticky routing).
 */

const WAIT = { timeout: 15_000 }

interface Deployment {
  readonly a: StatefulUpstream
  readonly b: StatefulUpstream
  readonly replicas: readonly TestGateway[]
  readonly proxy: RoundRobinProxy
}

async function withStatefulUpstream (t: Teardown, name: string): Promise<StatefulUpstream> {
  const upstream = await startStatefulUpstream({ name })
  t.teardown(() => upstream.close())
  return upstream
}

function statefulRoute (upstreams: readonly string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { path: '/mcp', upstream: upstreams, upstreamSessions: true, balance: 'roundRobin', getStream: 'forward', ...extra }
}

async function deploy (t: Teardown, redis: TestRedis, config: Record<string, unknown> = {}): Promise<Deployment> {
  const a = await withStatefulUpstream(t, 'a')
  const b = await withStatefulUpstream(t, 'b')
  const replicas: TestGateway[] = []
  for (let index = 0; index < 2; index++) {
    replicas.push(await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'stateful:' }, routes: [statefulRoute([a.url, b.url])], ...config } }))
  }
  const proxy = await startRoundRobinProxy(replicas.map((replica) => replica.origin), '/mcp')
  t.teardown(() => proxy.close())
  return { a, b, replicas, proxy }
}

interface Connected {
  readonly client: Client
  readonly transport: StreamableHTTPClientTransport
  /** Resolves when `notifications/tools/list_changed` arrives (on the GET stream). */
  readonly listChanged: Promise<void>
}

async function connect (t: Teardown, url: string): Promise<Connected> {
  const transport = new StreamableHTTPClientTransport(new URL(url))
  const client = new Client({ name: 'stateful-test', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } })
  t.teardown(() => client.close())
  client.setRequestHandler(ElicitRequestSchema, async (request) => ({ action: 'accept', content: { answer: `yes to ${request.params.message}` } }))
  const listChanged = new Promise<void>((resolve) => { client.setNotificationHandler(ToolListChangedNotificationSchema, () => { resolve() }) })
  await client.connect(transport)
  return { client, transport, listChanged }
}

async function callText (client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const result = await client.callTool({ name, arguments: args }) as CallToolResult
  const first = result.content[0]
  return first?.type === 'text' ? first.text : ''
}

async function whoami (client: Client): Promise<{ instance: string, upstreamSessionId: string }> {
  return JSON.parse(await callText(client, 'whoami')) as { instance: string, upstreamSessionId: string }
}

function instanceNamed (deployment: Deployment, name: string): StatefulUpstream {
  return name === 'a' ? deployment.a : deployment.b
}

/** A session opened on `url`, its `notifications/initialized` sent to `initializedUrl` (another replica, say). */
async function openInitialized (url: string, initializedUrl = url): Promise<string> {
  const sessionId = await openSession(url)
  await post(initializedUrl, { jsonrpc: '2.0', method: 'notifications/initialized' }, sessionId)
  return sessionId
}

async function failovers (replicas: readonly TestGateway[], cause: string): Promise<number> {
  let sum = 0
  for (const replica of replicas) sum += sample(await metricsText(replica.origin), 'mcpgw_upstream_failovers_total', { route: '/mcp', cause })
  return sum
}

t.test('affinity from any replica, and the ids never cross', async (t) => {
  const redis = await withRedis(t)
  const deployment = await deploy(t, redis)
  const clients = [await connect(t, deployment.proxy.url), await connect(t, deployment.proxy.url), await connect(t, deployment.proxy.url), await connect(t, deployment.proxy.url)]
  const gatewayIds = clients.map(({ transport }) => transport.sessionId as string)
  const upstreamIds = [...deployment.a.sessions(), ...deployment.b.sessions()]
  t.equal(upstreamIds.length, 4, 'one upstream session per client')
  t.ok(deployment.a.sessions().length > 0 && deployment.b.sessions().length > 0, 'new sessions are placed on both instances')

  for (const { client, transport } of clients) {
    const first = await whoami(client)
    for (let call = 1; call <= 4; call++) {
      // Every call lands on the other replica than the one before it (round-robin): the state is the instance's.
      t.equal(await callText(client, 'count'), String(call), 'the session\'s state lives on, whichever replica forwards')
      t.same(await whoami(client), first, 'the same instance and upstream session every time')
    }
    t.not(first.upstreamSessionId, transport.sessionId, 'the client sees the gateway\'s id, not the upstream\'s')
    t.ok(upstreamIds.includes(first.upstreamSessionId))
  }
  for (const upstream of [deployment.a, deployment.b]) {
    for (const seen of upstream.requests) {
      t.notOk(gatewayIds.includes(seen.sessionId ?? ''), 'the upstream never sees a gateway id')
    }
  }
  const replicasUsed = new Set(deployment.proxy.requests.map((request) => request.backend))
  t.equal(replicasUsed.size, 2, 'both replicas served the clients')
  t.equal(sample(await metricsText(deployment.replicas[0]?.origin ?? ''), 'mcpgw_upstream_sessions', { route: '/mcp', instance: new URL(deployment.a.url).origin + '/mcp' }), deployment.a.sessions().length, 'live sessions per instance, fleet-wide')
})

/** Session store round trips of every replica so far: touch, and every other except the scrape's own count reading. */
async function storeRoundTrips (replicas: readonly TestGateway[]): Promise<{ touch: number, other: number }> {
  const trips = { touch: 0, other: 0 }
  for (const replica of replicas) {
    for (const match of (await metricsText(replica.origin)).matchAll(/^mcpgw_redis_duration_seconds_count\{([^}]*)\} (\d+)/gm)) {
      const labels = match[1] as string
      if (labels.includes('operation="touch"')) trips.touch += Number(match[2])
      else if (!labels.includes('operation="upstreamSessionCounts"')) trips.other += Number(match[2])
    }
  }
  return trips
}

t.test('the instance and the upstream session come with the session check: one Redis round trip per request', async (t) => {
  const redis = await withRedis(t)
  const deployment = await deploy(t, redis)
  const sessionId = await openInitialized(`${deployment.replicas[0]?.origin ?? ''}/mcp`, `${deployment.replicas[1]?.origin ?? ''}/mcp`)
  const before = await storeRoundTrips(deployment.replicas)
  const requests = 10
  for (let index = 0; index < requests; index++) {
    const answer = await post(`${deployment.replicas[index % 2]?.origin ?? ''}/mcp`, { jsonrpc: '2.0', id: index, method: 'tools/list' }, sessionId)
    t.equal(answer.status, 200)
  }
  const after = await storeRoundTrips(deployment.replicas)
  t.equal(after.touch - before.touch, requests, 'one touch per request')
  t.equal(after.other - before.other, 0, 'and no other round trip')
})

t.test('a server-to-client request is answered through the other replica, and a list change reaches the GET stream', async (t) => {
  const redis = await withRedis(t)
  const deployment = await deploy(t, redis)
  const { client, listChanged } = await connect(t, deployment.proxy.url)
  const answer = await callText(client, 'ask', { message: 'proceed?' })
  t.match(answer, /yes to proceed\?/, 'the elicitation answer reached the instance that asked')
  const asked = deployment.proxy.requests.findIndex((request) => request.body.includes('"tools/call"') && request.body.includes('"ask"'))
  const answered = deployment.proxy.requests.findIndex((request) => request.body.includes('"result"') && request.body.includes('"action"'))
  t.ok(asked >= 0 && answered > asked, 'the call and its answer both went through the balancer')
  t.not(deployment.proxy.requests[answered]?.backend, deployment.proxy.requests[asked]?.backend, 'the answer went through the other replica')
  // The SDK client opens its GET stream after initialize, through either replica.
  await eventually(() => deployment.a.requests.some((request) => request.method === 'GET') || deployment.b.requests.some((request) => request.method === 'GET'), { ...WAIT, description: 'the GET stream to reach the instance' })
  t.equal(await callText(client, 'notify_changed'), 'sent')
  await listChanged
  t.pass('the instance\'s list change reached the client on its GET stream')
})

t.test('an instance killed: the next calls succeed on the other one, the client\'s session id unchanged', async (t) => {
  const redis = await withRedis(t)
  const deployment = await deploy(t, redis)
  const { client, transport } = await connect(t, deployment.proxy.url)
  const before = await whoami(client)
  const gatewayId = transport.sessionId
  await instanceNamed(deployment, before.instance).kill()
  const after = await whoami(client)
  t.not(after.instance, before.instance, 'moved to the live instance')
  t.equal(transport.sessionId, gatewayId, 'the client\'s session id never changes')
  t.equal(await callText(client, 'count'), '1', 'a new upstream session (the old instance\'s state is gone with it)')
  t.same(await whoami(client), after, 'and it stays there, from both replicas')
  t.equal(await failovers(deployment.replicas, 'unreachable'), 1, 'one failover, counted once fleet-wide')
})

t.test('an instance restarted (404 for its session): transparent re-initialize with the log level and subscriptions replayed', async (t) => {
  const redis = await withRedis(t)
  const deployment = await deploy(t, redis)
  const { client, transport } = await connect(t, deployment.proxy.url)
  await client.setLoggingLevel('warning')
  await client.subscribeResource({ uri: 'test://r' })
  const before = await whoami(client)
  const instance = instanceNamed(deployment, before.instance)
  await instance.kill()
  await instance.restart()
  const after = await whoami(client)
  t.not(after.upstreamSessionId, before.upstreamSessionId, 'a new upstream session')
  t.equal(transport.sessionId !== undefined, true)
  const moved = instanceNamed(deployment, after.instance)
  t.same(moved.levels(after.upstreamSessionId), ['warning'], 'the log level was replayed')
  t.same(moved.subscriptions(after.upstreamSessionId), ['test://r'], 'the subscription was replayed')
  t.ok(moved.requests.some((request) => request.sessionId === after.upstreamSessionId && request.rpcMethod === 'notifications/initialized'), 'notifications/initialized was replayed')
  t.equal(await failovers(deployment.replicas, 'not_found'), 1)
})

t.test('settings sent in a 2025-03-26 batch are replayed too', async (t) => {
  const redis = await withRedis(t)
  const only = await withStatefulUpstream(t, 'only')
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'batch:' }, routes: [statefulRoute([only.url])] } })
  const url = `${gateway.origin}/mcp`
  const version = { 'mcp-protocol-version': '2025-03-26' }
  const sessionId = (await post(url, initializeRequest(1, '2025-03-26'))).headers.get('mcp-session-id') ?? ''
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, sessionId, version)
  const batch = await post(url, [
    { jsonrpc: '2.0', id: 2, method: 'logging/setLevel', params: { level: 'error' } },
    { jsonrpc: '2.0', id: 3, method: 'resources/subscribe', params: { uri: 'test://r' } }
  ], sessionId, version)
  t.equal(batch.status, 200)
  await only.kill()
  await only.restart()
  const list = await post(url, { jsonrpc: '2.0', id: 4, method: 'tools/list' }, sessionId, version)
  t.equal(list.status, 200)
  const [moved] = only.sessions()
  t.same(only.levels(moved ?? ''), ['error'], 'the level set in the batch')
  t.same(only.subscriptions(moved ?? ''), ['test://r'], 'the subscription made in the batch')
})

t.test('DELETE, idle expiry and the admin API end the upstream session', async (t) => {
  const redis = await startTestRedis({ args: ['--notify-keyspace-events', 'Ex', '--hz', '50'] })
  t.teardown(() => redis.close())
  const deployment = await deploy(t, redis, { sessions: { idleTimeout: '1s' }, admin: { token: 'a-long-enough-admin-token' } })

  const deleted = await connect(t, deployment.proxy.url)
  const deletedUpstream = (await whoami(deleted.client)).upstreamSessionId
  await deleted.transport.terminateSession()
  // The upstream DELETE follows the gateway's end, not waited for by the client's 204.
  await eventually(() => [...deployment.a.deleted, ...deployment.b.deleted].includes(deletedUpstream), { ...WAIT, description: 'the DELETE to reach the upstream' })
  t.pass('DELETE reached the upstream')
  t.equal([...deployment.a.requests, ...deployment.b.requests].find((request) => request.method === 'DELETE' && request.sessionId === deletedUpstream)?.headers['user-agent'] !== undefined, true, 'in the client\'s name (its headers go along)')

  const expiring = await connect(t, deployment.proxy.url)
  const expiringUpstream = (await whoami(expiring.client)).upstreamSessionId
  await eventually(() => [...deployment.a.deleted, ...deployment.b.deleted].includes(expiringUpstream), { ...WAIT, description: 'the idle expiry to reach the upstream' })
  t.pass('idle expiry reached the upstream')

  const ended = await connect(t, deployment.proxy.url)
  const endedUpstream = (await whoami(ended.client)).upstreamSessionId
  const admin = await fetch(`${deployment.replicas[1]?.origin ?? ''}/admin/sessions/${ended.transport.sessionId ?? ''}`, { method: 'DELETE', headers: { authorization: 'Bearer a-long-enough-admin-token' } })
  t.equal(admin.status, 204)
  await eventually(() => [...deployment.a.deleted, ...deployment.b.deleted].includes(endedUpstream), { ...WAIT, description: 'the admin end to reach the upstream' })
  t.pass('the admin end reached the upstream')
})

t.test('a lone instance that restarts takes its sessions back at once, ejected or not', async (t) => {
  const redis = await withRedis(t)
  const only = await withStatefulUpstream(t, 'only')
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'lone:' }, routes: [statefulRoute([only.url])] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
  await only.kill()
  const down = await post(url, list, sessionId)
  t.equal(down.status, 502, 'nothing alive: 502, and the session stays')
  await only.restart()
  const back = await post(url, list, sessionId)
  t.equal(back.status, 200, 'right after the restart, within the passive ejection: the instance is tried, answers 404, the session is opened on it again')
  t.match(back.text, /whoami/)
  t.equal(only.sessions().length, 1)
})

t.test('racing failovers on two replicas agree on one upstream session', async (t) => {
  const redis = await withRedis(t)
  const deployment = await deploy(t, redis)
  const sessionId = await openInitialized(`${deployment.replicas[0]?.origin ?? ''}/mcp`)
  const first = deployment.a.sessions().length === 1 ? deployment.a : deployment.b
  const other = first === deployment.a ? deployment.b : deployment.a
  await first.kill()
  const whoamiCall = (id: number): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'whoami', arguments: {} } })
  const answers = await Promise.all(deployment.replicas.flatMap((replica, index) => [0, 1, 2].map(async (call) => await post(`${replica.origin}/mcp`, whoamiCall(index * 10 + call), sessionId))))
  const seen = new Set<string>()
  for (const answer of answers) {
    t.equal(answer.status, 200)
    const result = /"text":"(\{.*?\})"/.exec(answer.text)?.[1]
    if (result !== undefined) seen.add((JSON.parse(result.replaceAll('\\"', '"')) as { upstreamSessionId: string }).upstreamSessionId)
  }
  t.equal(seen.size, 1, 'every request of the session, on both replicas, used the same new upstream session')
  t.same(other.sessions(), [...seen], 'the live instance holds exactly that one session: a loser closed its own')
  t.equal(await failovers(deployment.replicas, 'unreachable'), 1, 'one failover won')
})

/**
 * An instance that takes initialize and then drops the connection of every later request after
 * reading it: a request whose fate the gateway cannot know.
 */
async function withDroppingInstance (t: Teardown): Promise<{ url: string, deleted: string[] }> {
  const deleted: string[] = []
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      if (request.method === 'DELETE') {
        deleted.push(String(request.headers['mcp-session-id']))
        response.writeHead(200).end()
        return
      }
      const message = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { id?: unknown, method?: string }
      if (message.method !== 'initialize') {
        response.socket?.destroy()
        return
      }
      response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'dropping-instance-session' })
      response.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'dropping', version: '1' } } }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, deleted }
}

t.test('after a request reached a failed instance: read-only ones are sent again, a tools/call is not (unless retryToolCalls)', async (t) => {
  const redis = await withRedis(t)
  const { url: dropping, deleted } = await withDroppingInstance(t)
  const live = await withStatefulUpstream(t, 'live')
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'dropping:' },
      routes: [
        { ...statefulRoute([dropping, live.url]), path: '/mcp' },
        { ...statefulRoute([dropping, live.url], { retryToolCalls: true }), path: '/retried' }
      ]
    }
  })
  const open = async (path: string): Promise<string> => await openSession(`${gateway.origin}${path}`)
  // roundRobin from the first instance: each new session lands on the dropping one.
  const called = await open('/mcp')
  const call = await post(`${gateway.origin}/mcp`, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'count', arguments: {} } }, called)
  t.equal(call.status, 200, 'answered in-band: the session is fine')
  const error = (JSON.parse(call.text) as { id: unknown, error: { code: number, message: string } })
  t.equal(error.id, 7)
  t.equal(error.error.code, -32603)
  t.match(error.error.message, /may or may not have run/, 'a clear JSON-RPC error, and the call was not run twice')
  t.equal(live.requests.filter((request) => request.rpcMethod === 'tools/call').length, 0, 'the live instance never ran it')
  const next = await post(`${gateway.origin}/mcp`, { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'count', arguments: {} } }, called)
  t.match(next.text, /"text":"1"/, 'the session goes on, on the live instance')
  await eventually(() => deleted.includes('dropping-instance-session'), { ...WAIT, description: 'the lost upstream session to be ended' })
  t.pass('the upstream session left behind is ended on the instance that still hears')

  const listed = await open('/mcp')
  const list = await post(`${gateway.origin}/mcp`, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, listed)
  t.match(list.text, /whoami/, 'a read-only request is sent again on the new instance')

  const retried = await open('/retried')
  const retriedCall = await post(`${gateway.origin}/retried`, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'count', arguments: {} } }, retried)
  t.match(retriedCall.text, /"text":"1"/, 'retryToolCalls: true sends a tools/call again')
})

t.test('a stream on an instance that dies ends with a JSON-RPC error for the pending request', async (t) => {
  const redis = await withRedis(t)
  const deployment = await deploy(t, redis)
  const { client } = await connect(t, deployment.proxy.url)
  const { instance } = await whoami(client)
  let progressed: () => void = () => {}
  const progress = new Promise<void>((resolve) => { progressed = resolve })
  const slow = client.callTool({ name: 'slow', arguments: { ms: 30_000 } }, undefined, { onprogress: () => { progressed() }, timeout: 60_000 })
  await progress
  await instanceNamed(deployment, instance).kill()
  await t.rejects(slow, /upstream/i, 'the pending call fails with the gateway\'s error, no hang')
  t.ok((await whoami(client)).instance !== instance, 'and the session goes on on the other instance')
})

t.test('2026-07-28 requests pass to any live instance; a 2026-07-28 initialize does not exist and opens nothing', async (t) => {
  const redis = await withRedis(t)
  const deployment = await deploy(t, redis)
  await deployment.a.kill()
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 'c', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} }
  const origin = deployment.replicas[0]?.origin ?? ''
  for (let call = 0; call < 2; call++) {
    // In turn, one of these would go to the dead instance: it never reached it, so the live one serves it.
    const answer = await post(`${origin}/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: meta } }, undefined, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' })
    t.not(answer.status, 502)
  }
  t.equal(deployment.b.requests.filter((request) => request.sessionId === undefined && request.rpcMethod === 'tools/list').length, 2, 'both reached the live instance, without a session')
  t.equal(sample(await metricsText(origin), 'mcpgw_upstream_instance_up', { route: '/mcp', instance: deployment.a.url }), 0, 'the dead instance is shown ejected')

  const sessionsBefore = deployment.b.sessions().length
  const modernInitialize = await post(`${origin}/mcp`, { jsonrpc: '2.0', id: 2, method: 'initialize', params: { protocolVersion: '2026-07-28', capabilities: {}, clientInfo: { name: 'c', version: '1' }, _meta: meta } }, undefined, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'initialize' })
  t.equal(modernInitialize.status, 400, 'refused at the edge')
  t.equal(deployment.b.sessions().length, sessionsBefore, 'no upstream session opened behind the gateway\'s back')
})

/**
 * A TCP proxy in front of an instance that can stop passing bytes without closing anything: an
 * instance that hangs (a stopped process, a partition), which no reset ever reveals.
 */
async function withBlackhole (t: Teardown, target: string): Promise<{ url: string, hang: () => void }> {
  const { port: targetPort } = new URL(target)
  let hanging = false
  const sockets = new Set<Socket>()
  const server = createNetServer((client) => {
    sockets.add(client)
    const upstream = connectTcp(Number(targetPort), '127.0.0.1')
    sockets.add(upstream)
    client.on('data', (chunk: Buffer) => { if (!hanging) upstream.write(chunk) })
    upstream.on('data', (chunk: Buffer) => { if (!hanging) client.write(chunk) })
    const close = (): void => { client.destroy(); upstream.destroy() }
    client.on('close', close)
    upstream.on('close', close)
    client.on('error', close)
    upstream.on('error', close)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, hang: () => { hanging = true } }
}

t.test('an instance that stops answering fails its health check: its pending call ends with an error, its session moves', async (t) => {
  const redis = await withRedis(t)
  const a = await withStatefulUpstream(t, 'a')
  const b = await withStatefulUpstream(t, 'b')
  const hanging = await withBlackhole(t, a.url)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'hang:' }, routes: [statefulRoute([hanging.url, b.url], { healthCheck: { interval: '1s' } })] } })
  const { client, transport } = await connect(t, `${gateway.origin}/mcp`)
  t.equal((await whoami(client)).instance, 'a', 'placed behind the proxy first (roundRobin)')
  let progressed: () => void = () => {}
  const progress = new Promise<void>((resolve) => { progressed = resolve })
  const slow = client.callTool({ name: 'slow', arguments: { ms: 60_000 } }, undefined, { onprogress: () => { progressed() }, timeout: 120_000 })
  await progress
  hanging.hang()
  // Sent once the instance hangs: they wait for an answer that never comes, until the check fails.
  const sessionId = transport.sessionId ?? ''
  const headers = { 'mcp-protocol-version': '2025-11-25' }
  const waitingList = post(`${gateway.origin}/mcp`, { jsonrpc: '2.0', id: 'list', method: 'tools/list' }, sessionId, headers)
  const waitingCall = post(`${gateway.origin}/mcp`, { jsonrpc: '2.0', id: 'call', method: 'tools/call', params: { name: 'count', arguments: {} } }, sessionId, headers)
  await t.rejects(slow, /upstream/i, 'the call on the hung instance ends with the gateway\'s error once the check fails')
  const list = await waitingList
  t.equal(list.status, 200)
  t.match(list.text, /whoami/, 'a read-only request that was waiting is sent again on the new instance')
  const call = await waitingCall
  t.equal(call.status, 200)
  t.match(JSON.parse(call.text), { id: 'call', error: { code: -32603, message: /may or may not have run/ } }, 'a tools/call that was waiting gets the in-band error')
  t.equal((await whoami(client)).instance, 'b', 'the session moved to the healthy instance')
  t.equal(sample(await metricsText(gateway.origin), 'mcpgw_upstream_failovers_total', { route: '/mcp', cause: 'ejected' }), 1)
})
