import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import { openSession, post } from './helpers/mcp-http.js'
import { metricsText, sample } from './helpers/metrics.js'
import { startStatefulUpstream, type StatefulUpstream } from './helpers/stateful-upstream.js'
import { startStatefulUpstreamProcess, type StatefulUpstreamProcess } from './helpers/stateful-upstream-process.js'

/*
 * A busy instance is not a dead one (docs/stateful-upstreams.md, "Health"): an instance is given up
 * only after `healthCheck.failureThreshold` (3) failed checks in a row with no byte from it meanwhile,
 * and a failed check never cuts a stream that is still receiving bytes.
 */

async function withStatefulUpstream (t: Teardown, name: string): Promise<StatefulUpstream> {
  const upstream = await startStatefulUpstream({ name })
  t.teardown(() => upstream.close())
  return upstream
}

async function withStatefulUpstreamProcess (t: Teardown, name: string): Promise<StatefulUpstreamProcess> {
  const upstream = await startStatefulUpstreamProcess(name)
  t.teardown(() => upstream.close())
  return upstream
}

async function connect (t: Teardown, url: string): Promise<Client> {
  const client = new Client({ name: 'busy-test', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(new StreamableHTTPClientTransport(new URL(url)))
  return client
}

async function callText (client: Client, name: string, args: Record<string, unknown> = {}, onprogress?: () => void): Promise<string> {
  const result = await client.callTool({ name, arguments: args }, undefined, { timeout: 60_000, ...(onprogress === undefined ? {} : { onprogress }) }) as CallToolResult
  const first = result.content[0]
  return first?.type === 'text' ? first.text : ''
}

/** The call's text, or its error as text: a call cut short shows as a failed assertion, not an exception. */
async function orFailure (call: Promise<string>): Promise<string> {
  return await call.catch((error: unknown) => `failed: ${String(error)}`)
}

async function whoami (client: Client): Promise<{ instance: string, upstreamSessionId: string }> {
  return JSON.parse(await callText(client, 'whoami')) as { instance: string, upstreamSessionId: string }
}

async function failovers (origin: string): Promise<number> {
  const metrics = await metricsText(origin)
  let sum = 0
  for (const cause of ['unreachable', 'ejected', 'not_found']) sum += sample(metrics, 'mcpgw_upstream_failovers_total', { route: '/mcp', cause })
  return sum
}

t.test('an instance whose event loop is blocked for 2.2 s (longer than a check\'s 1 s) keeps its sessions and its streams', async (t) => {
  const redis = await withRedis(t)
  // Its own process: its `busy` tool blocks that process, not the gateway's.
  const a = await withStatefulUpstreamProcess(t, 'a')
  const b = await withStatefulUpstream(t, 'b')
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'busy:' },
      routes: [{ path: '/mcp', upstream: [a.url, b.url], upstreamSessions: true, balance: 'roundRobin', getStream: 'forward', healthCheck: { interval: '1s' } }]
    }
  })
  const url = `${gateway.origin}/mcp`
  // roundRobin: the first and third sessions land on a.
  const waiting = await connect(t, url)
  await connect(t, url)
  const blocking = await connect(t, url)
  const waitingBefore = await whoami(waiting)
  const blockingBefore = await whoami(blocking)
  t.equal(waitingBefore.instance, 'a')
  t.equal(blockingBefore.instance, 'a')
  t.equal(await callText(waiting, 'count'), '1', 'state kept in the instance')

  // A call in flight on a, its stream open and already carrying bytes (a progress notification).
  let progressed: () => void = () => {}
  const progress = new Promise<void>((resolve) => { progressed = resolve })
  const slow = orFailure(callText(waiting, 'slow', { ms: 3_000 }, () => { progressed() }))
  await progress
  // Another session keeps a busy: no byte from it, health checks included, for 2.2 s.
  t.equal(await orFailure(callText(blocking, 'busy', { ms: 2_200 })), 'busy for 2200 ms', 'the blocking call completes')
  t.equal(await slow, 'done', 'the call in flight on the busy instance completes: its stream was not cut')

  t.same(await whoami(waiting), waitingBefore, 'the session stayed on its instance and upstream session')
  t.same(await whoami(blocking), blockingBefore)
  t.equal(await callText(waiting, 'count'), '2', 'with its state')
  t.equal(await failovers(gateway.origin), 0, 'no session moved')
  t.equal(sample(await metricsText(gateway.origin), 'mcpgw_upstream_instance_up', { route: '/mcp', instance: a.url }), 1, 'the instance is still placed')
  t.equal(gateway.logs.filter((line) => line.msg === 'upstream instance ejected').length, 0, 'and was never given up')
})

/**
 * An instance that accepts the health check's connection and never answers it, while it streams
 * the answer of a tools/call (a progress notification every 200 ms for 4 s, then the result): its
 * checks fail, its bytes keep coming.
 */
async function withChattyInstance (t: Teardown): Promise<{ url: string, healthChecks: () => number }> {
  let healthChecks = 0
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    if (request.method === 'GET') {
      // Never answered: the check times out.
      healthChecks++
      return
    }
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const message = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { id?: unknown, method?: string }
      if (message.method === 'initialize') {
        response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'chatty-session' })
        response.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'chatty', version: '1' } } }))
        return
      }
      if (message.id === undefined) {
        response.writeHead(202).end()
        return
      }
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      let sent = 0
      // A fixed pace on purpose: the instance's steady output over time is the behaviour.
      const timer = setInterval(() => {
        if (++sent <= 20) {
          response.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `step ${sent}` } })}\n\n`)
          return
        }
        clearInterval(timer)
        response.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [{ type: 'text', text: 'chatty done' }] } })}\n\n`)
      }, 200)
      response.once('close', () => { clearInterval(timer) })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, healthChecks: () => healthChecks }
}

t.test('failed health checks never cut a stream still receiving bytes; a silent instance is given up after several', async (t) => {
  const chatty = await withChattyInstance(t)
  const b = await withStatefulUpstream(t, 'b')
  const gateway = await withGateway(t, {
    config: { routes: [{ path: '/mcp', upstream: [chatty.url, b.url], upstreamSessions: true, balance: 'roundRobin', healthCheck: { interval: '1s' } }] }
  })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  const headers = { 'mcp-protocol-version': '2025-11-25' }
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, sessionId, headers)
  const answer = await post(url, { jsonrpc: '2.0', id: 'call', method: 'tools/call', params: { name: 'work', arguments: {} } }, sessionId, headers)
  t.ok(chatty.healthChecks() >= 3, `several health checks went unanswered meanwhile (${chatty.healthChecks()})`)
  t.equal(answer.status, 200)
  t.match(answer.messages.at(-1), { id: 'call', result: { content: [{ text: 'chatty done' }] } }, 'the stream ran to its result')
  t.equal(answer.messages.filter((message) => (message as { error?: unknown }).error !== undefined).length, 0, 'no error in it')
  t.equal(answer.messages.filter((message) => (message as { method?: unknown }).method === 'notifications/message').length, 20, 'every event reached the client')
  t.equal(await failovers(gateway.origin), 0)

  // Now silent, it still fails every check: given up after several in a row.
  await eventually(async () => sample(await metricsText(gateway.origin), 'mcpgw_upstream_instance_up', { route: '/mcp', instance: chatty.url }) === 0, { timeout: 15_000, interval: 100, description: 'the silent instance to be given up' })
  const ejected = gateway.logs.filter((line) => line.msg === 'upstream instance ejected')
  t.match(ejected, [{ instance: chatty.url, reason: /3 health checks failed in a row/ }], 'given up once, after 3 failed checks')
})
