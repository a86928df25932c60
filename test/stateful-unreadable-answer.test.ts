import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import { openSession, post } from './helpers/mcp-http.js'
import { metricsText, sample } from './helpers/metrics.js'
import { startStatefulUpstream, type StatefulUpstream } from './helpers/stateful-upstream.js'

/*
 * An answer the gateway cannot read is not a dead instance (docs/stateful-upstreams.md, "Failover"):
 * a legal but large response header (over undici's 16 KiB), or bytes that are not HTTP, are a 502
 * MCPGW_UPSTREAM_INVALID_RESPONSE for that request only. The instance is not ejected, the session
 * does not move (its upstream state stays), and the request is not sent again: it did run.
 */

interface OddInstance {
  readonly url: string
  /** tools/call names run, in order. */
  readonly calls: string[]
  readonly deleted: string[]
}

/**
 * A stateful instance whose tools answer in ways undici cannot read: `big_header` with a 20 KB
 * response header, `not_http` with bytes that are not an HTTP response. `whoami` answers normally.
 */
async function withOddInstance (t: Teardown): Promise<OddInstance> {
  const calls: string[] = []
  const deleted: string[] = []
  let opened = 0
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      if (request.method === 'DELETE') {
        deleted.push(String(request.headers['mcp-session-id']))
        response.writeHead(200).end()
        return
      }
      if (request.method !== 'POST') {
        response.writeHead(405).end()
        return
      }
      const message = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { id?: unknown, method?: string, params?: { name?: string } }
      const answer = (result: unknown): string => JSON.stringify({ jsonrpc: '2.0', id: message.id, result })
      if (message.method === 'initialize') {
        response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': `odd-${++opened}` })
        response.end(answer({ protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'odd', version: '1' } }))
        return
      }
      if (message.id === undefined) {
        response.writeHead(202).end()
        return
      }
      const name = message.params?.name ?? ''
      calls.push(name)
      const text = answer({ content: [{ type: 'text', text: `odd ran ${name}` }] })
      if (name === 'big_header') {
        response.writeHead(200, { 'content-type': 'application/json', 'x-trace-context': 'a'.repeat(20 * 1024) }).end(text)
      } else if (name === 'not_http') {
        response.socket?.end('HTTP/1.1 200 OK\r\nthis is not a header line\r\n\r\n')
      } else {
        response.writeHead(200, { 'content-type': 'application/json' }).end(text)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, calls, deleted }
}

async function withStatefulUpstream (t: Teardown, name: string): Promise<StatefulUpstream> {
  const upstream = await startStatefulUpstream({ name })
  t.teardown(() => upstream.close())
  return upstream
}

function call (id: number, name: string): Record<string, unknown> {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } }
}

t.test('an answer the gateway cannot read is a 502 for that request: no ejection, no move, not sent again', async (t) => {
  const redis = await withRedis(t)
  const odd = await withOddInstance(t)
  const live = await withStatefulUpstream(t, 'live')
  const route = { upstream: [odd.url, live.url], upstreamSessions: true, balance: 'roundRobin', healthCheck: { interval: '1s' } }
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'unreadable:' },
      routes: [{ ...route, path: '/mcp' }, { ...route, path: '/retried', retryToolCalls: true }]
    }
  })
  const headers = { 'mcp-protocol-version': '2025-11-25' }
  let id = 0
  for (const path of ['/mcp', '/retried']) {
    // roundRobin from the first instance: the session lands on the odd one.
    const url = `${gateway.origin}${path}`
    const sessionId = await openSession(url)
    for (const tool of ['big_header', 'not_http']) {
      const before = odd.calls.length
      const answer = await post(url, call(++id, tool), sessionId, headers)
      t.equal(answer.status, 502, `${path} ${tool}: 502`)
      t.match(JSON.parse(answer.text), { jsonrpc: '2.0', id, error: { code: -32603, message: /answer is not one the gateway can read/ } }, `${path} ${tool}: MCPGW_UPSTREAM_INVALID_RESPONSE for its id`)
      t.same(odd.calls.slice(before), [tool], `${path} ${tool}: it ran once, on the session's instance, and was not sent again`)
      const next = await post(url, call(++id, 'whoami'), sessionId, headers)
      t.match(next.text, /odd ran whoami/, `${path} ${tool}: the session stays on its instance`)
    }
  }
  t.equal(live.requests.filter((request) => request.rpcMethod === 'tools/call').length, 0, 'nothing was moved to the other instance')
  t.equal(live.initializeCount(), 0, 'no upstream session was opened there')
  t.same(odd.deleted, [], 'and none was ended on the odd one')
  const metrics = await metricsText(gateway.origin)
  for (const path of ['/mcp', '/retried']) {
    t.equal(sample(metrics, 'mcpgw_upstream_instance_up', { route: path, instance: odd.url }), 1, `${path}: the instance is still placed`)
    for (const cause of ['unreachable', 'ejected', 'not_found']) {
      t.equal(sample(metrics, 'mcpgw_upstream_failovers_total', { route: path, cause }), 0, `${path}: no failover (${cause})`)
    }
    t.equal(sample(metrics, 'mcpgw_upstream_errors_total', { route: path, kind: 'invalid' }), 2, `${path}: counted as invalid answers`)
  }
})
