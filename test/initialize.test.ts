import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isWellFormedSessionId } from '../src/sessions/session-id.js'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream, type Teardown } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import type { TestRedis } from './helpers/redis-server.js'

/*
 * A session is minted only when the upstream's reply carries an initialize result (MCP spec,
 * Transports, Streamable HTTP, Session Management).
 */

/** An upstream that answers every request with a fixed status, content type and body. */
async function withFixedUpstream (t: Teardown, status: number, contentType: string, body: string): Promise<string> {
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    request.resume()
    request.on('end', () => {
      response.writeHead(status, { 'content-type': contentType })
      response.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`
}

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

for (const kind of storeKinds) {
  for (const responseMode of ['json', 'sse'] as const) {
    t.test(`${kind} store, ${responseMode} upstream: a successful initialize mints a stored session`, async (t) => {
      const upstream = await withUpstream(t, { responseMode })
      const gateway = await withGateway(t, { config: { ...redisSection(kind, redis), routes: [{ path: '/mcp', upstream: upstream.url }] } })
      const answer = await post(`${gateway.origin}/mcp`, initializeRequest(42))
      t.equal(answer.status, 200)
      t.match(answer.headers.get('content-type'), responseMode === 'sse' ? /^text\/event-stream/ : /^application\/json/)
      t.match(answer.messages, [{ jsonrpc: '2.0', id: 42, result: { protocolVersion: '2025-11-25', serverInfo: { name: 'demo-upstream' } } }], 'the upstream reply comes back unchanged')
      const sessionId = answer.headers.get('mcp-session-id')
      t.ok(sessionId !== null && isWellFormedSessionId(sessionId), 'a well-formed id')
      const stored = await gateway.app.sessionStore.get(sessionId as string)
      t.match(stored, {
        id: sessionId,
        route: '/mcp',
        protocolVersion: '2025-11-25',
        clientInfo: { name: 'gateway-test', version: '1.0.0' },
        clientCapabilities: { roots: { listChanged: true } }
      })
      t.ok(typeof stored?.createdAt === 'number' && stored.createdAt > 0, 'creation time stored')
      if (kind === 'redis') t.equal(await redis.client().exists(`mcpgw-test:session:${sessionId}`), 1, 'the session is in Redis')
      const second = await post(`${gateway.origin}/mcp`, initializeRequest(43))
      t.not(second.headers.get('mcp-session-id'), sessionId, 'every initialize gets a new id')
    })
  }

  t.test(`${kind} store: a failed initialize mints nothing and passes the reply back unchanged`, async (t) => {
    const cases: Array<{ name: string, status: number, contentType: string, body: string }> = [
      { name: 'JSON-RPC error in HTTP 200 JSON', status: 200, contentType: 'application/json', body: '{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unsupported protocol version"}}' },
      { name: 'JSON-RPC error in HTTP 200 SSE', status: 200, contentType: 'text/event-stream', body: 'event: message\ndata: {"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"boom"}}\n\n' },
      { name: 'result for another id', status: 200, contentType: 'application/json', body: '{"jsonrpc":"2.0","id":999,"result":{"protocolVersion":"2025-11-25"}}' },
      { name: 'result without protocolVersion', status: 200, contentType: 'application/json', body: '{"jsonrpc":"2.0","id":1,"result":{}}' },
      { name: 'SSE stream that ends without a response', status: 200, contentType: 'text/event-stream', body: 'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n' },
      { name: 'unparseable JSON body', status: 200, contentType: 'application/json', body: '{"jsonrpc":"2.0","id":1,"result":' },
      { name: 'unparseable SSE data', status: 200, contentType: 'text/event-stream', body: 'data: not json\n\n' },
      { name: 'HTTP 500 with a result-looking body', status: 500, contentType: 'application/json', body: '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}' },
      { name: 'HTTP 400', status: 400, contentType: 'application/json', body: '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad"}}' },
      { name: 'text/plain body', status: 200, contentType: 'text/plain', body: 'hello' }
    ]
    for (const testCase of cases) {
      const upstreamUrl = await withFixedUpstream(t, testCase.status, testCase.contentType, testCase.body)
      const gateway = await withGateway(t, { config: { ...redisSection(kind, redis, `mcpgw-fail-${kind}:`), routes: [{ path: '/mcp', upstream: upstreamUrl }] } })
      const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1))
      t.equal(answer.status, testCase.status, `${testCase.name}: status passed through`)
      t.equal(answer.text, testCase.body, `${testCase.name}: body passed through byte for byte`)
      t.equal(answer.headers.get('mcp-session-id'), null, `${testCase.name}: no session id`)
      if (kind === 'redis') t.same(await redis.client().keys(`mcpgw-fail-${kind}:*`), [], `${testCase.name}: nothing in Redis`)
    }
  })

  t.test(`${kind} store: an SSE initialize reply with notifications before the result still mints, and streams on`, async (t) => {
    const body = 'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}\n\n' +
      'event: message\ndata: {"jsonrpc":"2.0","id":"init-1","result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"x","version":"1"}}}\n\n'
    const upstreamUrl = await withFixedUpstream(t, 200, 'text/event-stream', body)
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis), routes: [{ path: '/mcp', upstream: upstreamUrl }] } })
    const answer = await post(`${gateway.origin}/mcp`, initializeRequest('init-1'))
    t.equal(answer.status, 200)
    t.equal(answer.text, body, 'every event, in order')
    t.equal(answer.headers.get('x-accel-buffering'), 'no')
    const sessionId = answer.headers.get('mcp-session-id') as string
    t.equal((await gateway.app.sessionStore.get(sessionId))?.protocolVersion, '2025-06-18', 'the negotiated version is the one in the result')
  })
}
