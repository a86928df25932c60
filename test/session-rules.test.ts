import t from 'tap'
import { mintSessionId } from '../src/sessions/session-id.js'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, openSession, post, request } from './helpers/mcp-http.js'
import type { TestRedis } from './helpers/redis-server.js'

/* The session rules of the MCP spec (Transports, Streamable HTTP, Session Management) over HTTP, against both stores. */

const sessionNotFound = { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }
const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

for (const kind of storeKinds) {
  t.test(`${kind} store`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'sse' })
    const otherUpstream = await withUpstream(t, { responseMode: 'json' })
    const gateway = await withGateway(t, {
      config: {
        ...redisSection(kind, redis, `rules-${kind}:`),
        routes: [{ path: '/mcp', upstream: upstream.url }, { path: '/other/mcp', upstream: otherUpstream.url }]
      }
    })
    const url = `${gateway.origin}/mcp`

    t.test('a request without Mcp-Session-Id gets 400 with a JSON-RPC error, and never reaches the upstream', async (t) => {
      const before = upstream.received.length
      for (const method of ['POST', 'GET', 'DELETE']) {
        const answer = await request(url, { method, ...(method === 'POST' ? { body: toolsList } : {}) })
        t.equal(answer.status, 400, method)
        t.same(JSON.parse(answer.text), { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required' } }, method)
      }
      t.equal(upstream.received.length, before)
    })

    t.test('an unknown or malformed id gets 404 -32001, on every method', async (t) => {
      for (const sessionId of [mintSessionId(), 'not-ours', 'x'.repeat(500), 'ümlaut-id-not-ascii']) {
        for (const method of ['POST', 'GET', 'DELETE']) {
          const answer = await request(url, { method, headers: { 'mcp-session-id': encodeURIComponent(sessionId) }, ...(method === 'POST' ? { body: toolsList } : {}) })
          t.equal(answer.status, 404, `${method} ${sessionId.slice(0, 12)}`)
          t.same(JSON.parse(answer.text), sessionNotFound)
        }
      }
    })

    const addCall = { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'add', arguments: { a: 2, b: 40 } } }

    t.test('a live id is forwarded without the session header', async (t) => {
      const sessionId = await openSession(url)
      const before = upstream.received.length
      await post(url, addCall, sessionId, { 'x-custom': 'kept' })
      const forwarded = upstream.received[before]
      t.equal(forwarded?.headers['mcp-session-id'], undefined, 'the upstream never sees our session id')
      t.equal(forwarded?.headers['x-custom'], 'kept', 'other headers pass')
      t.equal(forwarded?.body, JSON.stringify(addCall), 'the body is forwarded byte for byte')
    })

    t.test('tools work in a live session', async (t) => {
      const sessionId = await openSession(url)
      const answer = await post(url, addCall, sessionId, { 'x-custom': 'kept' })
      t.equal(answer.status, 200)
      t.match(answer.messages, [{ id: 3, result: { content: [{ type: 'text', text: '42' }] } }])
    })

    t.test('notifications and client responses in a live session get the upstream 202', async (t) => {
      const sessionId = await openSession(url)
      const notification = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, sessionId)
      t.equal(notification.status, 202)
      t.equal(notification.text, '')
      const clientResponse = await post(url, { jsonrpc: '2.0', id: 'server-req-1', result: {} }, sessionId)
      t.equal(clientResponse.status, 202, 'a JSON-RPC response POSTed by the client is accepted the same way')
    })

    t.test('GET with a live id is answered 405 at the edge by default (a stateless upstream has nothing to push)', async (t) => {
      const sessionId = await openSession(url)
      const before = upstream.received.length
      const answer = await request(url, { method: 'GET', headers: { 'mcp-session-id': sessionId, accept: 'text/event-stream' } })
      t.equal(answer.status, 405)
      t.equal(answer.headers.get('allow'), 'POST, DELETE')
      t.match(JSON.parse(answer.text), { jsonrpc: '2.0', error: { code: -32000 } })
      t.equal(upstream.received.length, before, 'the upstream was not called')
      t.equal((await request(url, { method: 'GET', headers: { 'mcp-session-id': mintSessionId() } })).status, 404, 'the session check comes first')
    })

    t.test('a session belongs to its route', async (t) => {
      const sessionId = await openSession(url)
      const answer = await post(`${gateway.origin}/other/mcp`, toolsList, sessionId)
      t.equal(answer.status, 404, 'not valid on another route')
      const deleted = await request(`${gateway.origin}/other/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': sessionId } })
      t.equal(deleted.status, 404, 'not deletable from another route')
      t.equal((await post(url, toolsList, sessionId)).status, 200, 'still live on its own route')
      const otherSession = await openSession(`${gateway.origin}/other/mcp`)
      const onOther = await post(`${gateway.origin}/other/mcp`, toolsList, otherSession)
      t.equal(onOther.status, 200)
      t.match(onOther.headers.get('content-type'), /application\/json/, 'the second route has its own upstream')
    })

    t.test('DELETE ends the session at the edge: 204, upstream not called, then 404 everywhere', async (t) => {
      const sessionId = await openSession(url)
      const before = upstream.received.length
      const deleted = await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId } })
      t.equal(deleted.status, 204)
      t.equal(deleted.text, '')
      t.equal(upstream.received.length, before, 'the upstream never saw the DELETE')
      t.equal((await post(url, toolsList, sessionId)).status, 404)
      t.equal((await request(url, { method: 'GET', headers: { 'mcp-session-id': sessionId } })).status, 404)
      t.equal((await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId } })).status, 404, 'a second DELETE is 404')
      if (kind === 'redis') t.equal(await redis.client().exists(`rules-${kind}:session:${sessionId}`), 0, 'gone from Redis')
    })

    t.test('initialize never revives or reuses an id', async (t) => {
      const live = await openSession(url)
      const again = await post(url, initializeRequest(5), live)
      t.equal(again.status, 400, 'live id: already initialized')
      t.equal(again.headers.get('mcp-session-id'), null)
      t.match(JSON.parse(again.text), { id: 5, error: { code: -32600, message: /already initialized/ } })
      await request(url, { method: 'DELETE', headers: { 'mcp-session-id': live } })
      const revived = await post(url, initializeRequest(6), live)
      t.equal(revived.status, 404, 'terminated id: not found')
      t.equal(revived.headers.get('mcp-session-id'), null)
      t.equal((await post(url, initializeRequest(7), mintSessionId())).status, 404, 'unknown id: not found')
    })

    t.test('bad bodies get 400 with the right JSON-RPC code and never reach the upstream', async (t) => {
      const sessionId = await openSession(url)
      const before = upstream.received.length
      const cases: Array<[string, string, number]> = [
        ['not JSON', '{"jsonrpc":', -32700],
        ['empty body', '', -32700],
        ['binary garbage', '\u0000\u00ff\u00fe', -32700],
        ['JSON, not JSON-RPC', '{"hello":"world"}', -32600],
        ['wrong jsonrpc version', '{"jsonrpc":"1.0","id":1,"method":"x"}', -32600],
        ['a number', '42', -32600],
        ['empty batch', '[]', -32600],
        ['batch with a bad element', '[{"jsonrpc":"2.0","id":1,"method":"a"},{}]', -32600],
        ['initialize in a batch', JSON.stringify([initializeRequest(1)]), -32600]
      ]
      for (const [name, rawBody, code] of cases) {
        for (const withSession of [true, false]) {
          const answer = await request(url, { rawBody, headers: withSession ? { 'mcp-session-id': sessionId } : {} })
          t.equal(answer.status, 400, `${name} (${withSession ? 'with' : 'without'} session)`)
          t.match(JSON.parse(answer.text), { jsonrpc: '2.0', id: null, error: { code } }, name)
          t.equal(answer.headers.get('mcp-session-id'), null)
        }
      }
      t.equal(upstream.received.length, before)
      t.equal((await post(url, toolsList, sessionId)).status, 200, 'the session survives bad input')
    })

    t.test('other HTTP methods get 405 with Allow', async (t) => {
      const put = await request(url, { method: 'PUT', rawBody: '{}' })
      t.equal(put.status, 405)
      t.equal(put.headers.get('allow'), 'GET, POST, DELETE')
      t.match(JSON.parse(put.text), { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' } })
    })

    t.test('unknown paths get 404', async (t) => {
      const unknown = await post(`${gateway.origin}/nope`, toolsList)
      t.equal(unknown.status, 404)
      t.match(JSON.parse(unknown.text), { error: { message: /no MCP route/ } })
    })

    t.test('a body over limits.maxBodyBytes gets 413', async (t) => {
      const small = await withGateway(t, { config: { ...redisSection(kind, redis, `rules-small-${kind}:`), limits: { maxBodyBytes: 1024 }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
      const before = upstream.received.length
      const answer = await post(`${small.origin}/mcp`, { ...initializeRequest(1), padding: 'x'.repeat(2048) })
      t.equal(answer.status, 413)
      t.match(JSON.parse(answer.text), { jsonrpc: '2.0', error: { code: -32600, message: /maxBodyBytes/ } })
      t.equal(upstream.received.length, before)
    })
  })
}
