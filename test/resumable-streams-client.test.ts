import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { createServer as createHttpServer, type IncomingMessage } from 'node:http'
import { createServer as createTcpServer, connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'

/*
 * Resumable streams (MCP 2025-11-25, Transports › Resumability and Redelivery) with the official
 * TypeScript v1 client: `Client` + `StreamableHTTPClientTransport`, in front of two gateway replicas
 * sharing one real Redis and a stateless SDK v1 upstream. A TCP balancer sends every connection to
 * replica A until it cuts them all mid-call (socket.destroy), then every new connection to replica
 * B. The client resumes on its own (GET + Last-Event-ID, reconnectionOptions) and must see every
 * notification once, in order, then the tool's result.
 */

const STEPS = 6

interface Gate {
  readonly promise: Promise<void>
  open (): void
}

function gate (): Gate {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

/** What the upstream's tool waits for: the cut (before step 3) and the client's resume (before step 5). */
interface ToolGates {
  readonly cut: Gate
  readonly resumed: Gate
}

/**
 * A stateless SDK v1 server (a new server and transport per request, as demo/upstream.ts): the tool
 * `six-steps` sends, per step, a logging message then a progress notification, then returns. It
 * waits for the test's gates so that steps 3-4 are sent while the client is away and 5-6 after it
 * came back (replayed or live, whichever the timing makes them: each must arrive once either way).
 */
async function withSdkUpstream (t: Teardown, gates: ToolGates): Promise<{ url: string, toolCallsClosedEarly: () => number }> {
  let closedEarly = 0
  const server = createHttpServer((request: IncomingMessage, response) => {
    void (async () => {
      const chunks: Buffer[] = []
      for await (const chunk of request) chunks.push(chunk as Buffer)
      if (request.method !== 'POST') {
        response.writeHead(405, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Method not allowed.' } }))
        return
      }
      const mcp = new McpServer({ name: 'six-steps-upstream', version: '1.0.0' }, { capabilities: { logging: {} } })
      mcp.registerTool('six-steps', { description: 'Logs and reports progress six times, then returns' }, async (extra) => {
        const progressToken = extra._meta?.progressToken
        let finished = false
        response.once('close', () => { if (!finished) closedEarly++ })
        for (let step = 1; step <= STEPS; step++) {
          if (step === 3) await gates.cut.promise
          if (step === 5) await gates.resumed.promise
          await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: `step ${step}` } })
          if (progressToken !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: step, total: STEPS } })
        }
        finished = true
        return { content: [{ type: 'text', text: `${STEPS} steps done` }] }
      })
      mcp.registerTool('paced-steps', { description: 'Logs and reports progress six times, 150 ms apart, then returns' }, async (extra) => {
        const progressToken = extra._meta?.progressToken
        for (let step = 1; step <= STEPS; step++) {
          // A fixed pace on purpose: the call outlasts several polled responses (streams.maxConnectionTime).
          await new Promise((resolve) => setTimeout(resolve, 150))
          await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: `step ${step}` } })
          if (progressToken !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: step, total: STEPS } })
        }
        return { content: [{ type: 'text', text: `${STEPS} paced steps done` }] }
      })
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
      response.on('close', () => {
        void transport.close()
        void mcp.close()
      })
      await mcp.connect(transport)
      await transport.handleRequest(request, response, JSON.parse(Buffer.concat(chunks).toString('utf8')))
    })().catch(() => { response.destroy() })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, toolCallsClosedEarly: () => closedEarly }
}

interface BalancedConnection {
  readonly replica: 'A' | 'B'
  /** The first bytes the client sent on it (its first request's head). */
  head: string
}

interface TcpBalancer {
  readonly url: string
  readonly connections: BalancedConnection[]
  /** Destroys every open connection (both sides); new connections go to replica B from now on. */
  cut (): void
}

/** A TCP balancer in front of the two replicas: connections to A, and after `cut()` to B. */
async function withTcpBalancer (t: Teardown, a: TestGateway, b: TestGateway, onConnection: (connection: BalancedConnection) => void): Promise<TcpBalancer> {
  const connections: BalancedConnection[] = []
  const open = new Set<Socket>()
  let replica: 'A' | 'B' = 'A'
  const server = createTcpServer((client) => {
    const connection: BalancedConnection = { replica, head: '' }
    connections.push(connection)
    const target = connect(Number(new URL(replica === 'A' ? a.origin : b.origin).port), '127.0.0.1')
    open.add(client)
    open.add(target)
    client.once('data', (chunk: Buffer) => {
      connection.head = chunk.toString('latin1')
      onConnection(connection)
    })
    for (const [from, to] of [[client, target], [target, client]] as const) {
      from.pipe(to)
      from.on('error', () => { to.destroy() })
      from.on('close', () => {
        open.delete(from)
        to.destroy()
      })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const socket of open) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    connections,
    cut: () => {
      replica = 'B'
      for (const socket of open) socket.destroy()
    }
  }
}

t.test('the SDK v1 client, cut mid-call, resumes on the other replica: every notification once, in order, then the result', async (t) => {
  const redis = await withRedis(t)
  const gates: ToolGates = { cut: gate(), resumed: gate() }
  const upstream = await withSdkUpstream(t, gates)
  const config = {
    redis: { url: redis.url, keyPrefix: 'resume-client:' },
    routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }]
  }
  const a = await withGateway(t, { config })
  const b = await withGateway(t, { config })
  const balancer = await withTcpBalancer(t, a, b, (connection) => {
    if (connection.replica === 'B' && /^GET /.test(connection.head) && /\r\nlast-event-id: /i.test(connection.head)) gates.resumed.open()
  })

  const transport = new StreamableHTTPClientTransport(new URL(balancer.url), {
    // Quick retries so the test is quick; the gateway sends no `retry:` here (no maxConnectionTime).
    reconnectionOptions: { initialReconnectionDelay: 20, maxReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 5 }
  })
  const client = new Client({ name: 'resuming-client', version: '1.0.0' })
  t.teardown(() => client.close())
  const transportErrors: string[] = []
  await client.connect(transport)
  const clientOnError = transport.onerror
  transport.onerror = (error) => {
    transportErrors.push(error.message)
    clientOnError?.(error)
  }
  const logs: unknown[] = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => { logs.push(notification.params.data) })
  const progress: number[] = []
  const result = await client.callTool({ name: 'six-steps', arguments: {} }, undefined, {
    timeout: 15_000,
    onprogress: ({ progress: step }) => {
      progress.push(step)
      if (step === 2) {
        balancer.cut()
        gates.cut.open()
      }
    }
  })

  t.same(result.content, [{ type: 'text', text: `${STEPS} steps done` }], 'callTool resolves with the tool\'s result')
  t.same(progress, [1, 2, 3, 4, 5, 6], 'every progress notification once, in order')
  t.same(logs, ['step 1', 'step 2', 'step 3', 'step 4', 'step 5', 'step 6'], 'every logging message once, in order')
  t.ok(transportErrors.some((message) => message.includes('SSE stream disconnected')), 'the client did see its stream cut')
  const resumes = balancer.connections.filter((connection) => /^GET /.test(connection.head) && /\r\nlast-event-id: /i.test(connection.head))
  t.ok(resumes.length >= 1 && resumes.every((connection) => connection.replica === 'B'), 'the client resumed with Last-Event-ID, on replica B')
  t.ok(balancer.connections.some((connection) => connection.replica === 'A' && connection.head.includes('"tools/call"')), 'the call itself went to replica A')
  t.equal(upstream.toolCallsClosedEarly(), 0, 'the cut did not end the upstream call')
  // The session works on as before, through replica B.
  t.ok((await client.listTools()).tools.some((tool) => tool.name === 'six-steps'), 'a later request on the session')
})

t.test('SSE polling: with maxConnectionTime the SDK v1 client follows the gateway\'s retry field across replicas, and gets everything once', async (t) => {
  const redis = await withRedis(t)
  const gates: ToolGates = { cut: gate(), resumed: gate() }
  const upstream = await withSdkUpstream(t, gates)
  const config = {
    redis: { url: redis.url, keyPrefix: 'resume-client-polling:' },
    streams: { maxConnectionTime: '300ms' },
    routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }]
  }
  const a = await withGateway(t, { config })
  const b = await withGateway(t, { config })
  const resumes: string[] = []
  const transport = new StreamableHTTPClientTransport(new URL(`${a.origin}/mcp`), {
    // Long on purpose: the client must wait what the gateway's `retry:` says (2025-11-25: it MUST respect it), not this.
    reconnectionOptions: { initialReconnectionDelay: 20_000, maxReconnectionDelay: 20_000, reconnectionDelayGrowFactor: 1, maxRetries: 2 },
    // The balancer: resumptions (GET + Last-Event-ID) to replica B, everything else to replica A.
    fetch: async (input, init) => {
      const lastEventId = new Headers(init?.headers).get('last-event-id')
      if ((init?.method ?? 'GET') !== 'GET' || lastEventId === null) return await fetch(input, init)
      resumes.push(lastEventId)
      const url = new URL(String(input instanceof Request ? input.url : input))
      return await fetch(new URL(url.pathname + url.search, b.origin), init)
    }
  })
  const client = new Client({ name: 'polling-client', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(transport)
  const logs: unknown[] = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => { logs.push(notification.params.data) })
  const progress: number[] = []
  const result = await client.callTool({ name: 'paced-steps', arguments: {} }, undefined, { timeout: 15_000, onprogress: ({ progress: step }) => { progress.push(step) } })
  t.same(result.content, [{ type: 'text', text: `${STEPS} paced steps done` }])
  t.same(progress, [1, 2, 3, 4, 5, 6], 'every progress notification once, in order')
  t.same(logs, ['step 1', 'step 2', 'step 3', 'step 4', 'step 5', 'step 6'], 'every logging message once, in order')
  t.ok(resumes.length >= 1, `the client came back with Last-Event-ID (${resumes.length} times)`)
  t.equal(new Set(resumes).size, resumes.length, 'each time from a later event')
})
