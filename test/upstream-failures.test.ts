import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { freePort } from './helpers/redis-server.js'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, openSession, post } from './helpers/mcp-http.js'
import type { TestRedis } from './helpers/redis-server.js'

/* Upstream failures map to 502 / 504 with a JSON-RPC error echoing the request's id; nothing is minted. */

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

for (const kind of storeKinds) {
  t.test(`${kind} store: upstream refusing connections → 502`, async (t) => {
    const deadPort = await freePort()
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis, `dead-${kind}:`), routes: [{ path: '/mcp', upstream: `http://127.0.0.1:${deadPort}/mcp` }] } })
    const answer = await post(`${gateway.origin}/mcp`, initializeRequest('init-7'))
    t.equal(answer.status, 502)
    t.same(JSON.parse(answer.text), { jsonrpc: '2.0', id: 'init-7', error: { code: -32603, message: 'Bad Gateway: the upstream MCP server could not be reached' } })
    t.equal(answer.headers.get('mcp-session-id'), null, 'a failed initialize mints nothing')
    if (kind === 'redis') t.same(await redis.client().keys(`dead-${kind}:*`), [])
    // The upstream's fault, not the gateway's: a warning with its code, no error line, no stack.
    const lines = gateway.logs.filter((line) => line.reqId !== undefined && (line.level as number) >= 40)
    t.match(lines, [{ level: 40, msg: 'request failed: the upstream', code: 'MCPGW_UPSTREAM_UNREACHABLE' }])
    t.notOk(JSON.stringify(lines).includes('"stack"'), 'no stack')
  })

  t.test(`${kind} store: upstream slower than routes[].timeout → 504`, async (t) => {
    const upstream = await withUpstream(t)
    const slow = createServer(() => { /* never answers */ })
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => { slow.closeAllConnections(); slow.close(() => resolve()) }))
    const gateway = await withGateway(t, {
      config: {
        ...redisSection(kind, redis, `slow-${kind}:`),
        routes: [
          { path: '/mcp', upstream: upstream.url },
          { path: '/slow', upstream: `http://127.0.0.1:${(slow.address() as AddressInfo).port}/mcp`, timeout: '300ms' }
        ]
      }
    })
    const answer = await post(`${gateway.origin}/slow`, initializeRequest(11))
    t.equal(answer.status, 504)
    t.same(JSON.parse(answer.text), { jsonrpc: '2.0', id: 11, error: { code: -32603, message: 'Gateway Timeout: the upstream MCP server did not answer in time' } })
    t.equal(answer.headers.get('mcp-session-id'), null)
    const sessionId = await openSession(`${gateway.origin}/mcp`)
    t.equal((await post(`${gateway.origin}/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, sessionId)).status, 200, 'other routes unaffected')
  })
}

t.test('an upstream dropping the connection mid-initialize mints nothing', async (t) => {
  const dropping = createServer((request) => { request.socket.destroy() })
  await new Promise<void>((resolve) => dropping.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => dropping.close(() => resolve())))
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: `http://127.0.0.1:${(dropping.address() as AddressInfo).port}/mcp` }] } })
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1))
  t.equal(answer.status, 502)
  t.equal(answer.headers.get('mcp-session-id'), null)
})

t.test('an upstream dying in the middle of an SSE initialize reply mints nothing', async (t) => {
  const dying = createServer((request, response) => {
    request.resume()
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    response.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n')
    setTimeout(() => response.socket?.destroy(), 50)
  })
  await new Promise<void>((resolve) => dying.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { dying.closeAllConnections(); dying.close(() => resolve()) }))
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: `http://127.0.0.1:${(dying.address() as AddressInfo).port}/mcp` }] } })
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1))
  t.equal(answer.status, 502)
  t.match(JSON.parse(answer.text), { id: 1, error: { code: -32603 } })
  t.equal(answer.headers.get('mcp-session-id'), null)
  t.equal(answer.headers.get('content-type'), 'application/json; charset=utf-8', 'no upstream header describes the error body')
})
