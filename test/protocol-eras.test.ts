import t from 'tap'
import { decodeHeaderValue, encodeHeaderValue } from '../src/mcp/request-metadata.js'
import { mintSessionId } from '../src/sessions/session-id.js'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream, type Teardown } from './helpers/fixtures.js'
import { initializeRequest, openSession, post, request } from './helpers/mcp-http.js'
import { startModernUpstream, type ModernUpstream } from './helpers/modern-upstream.js'
import type { TestRedis } from './helpers/redis-server.js'

/*
 * Both protocol eras on one endpoint (docs/era-bridge.md), version rules, batches, the GET stream (MCP
 * spec: Lifecycle, version negotiation; Transports, Streamable HTTP).
 */

const MODERN = '2026-07-28'
const envelope = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientInfo': { name: 'modern-test', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {}
}

function modernCall (id: number, method: string, params: Record<string, unknown> = {}, version = MODERN): Record<string, unknown> {
  return { jsonrpc: '2.0', id, method, params: { ...params, _meta: { ...envelope, 'io.modelcontextprotocol/protocolVersion': version } } }
}

function modernHeaders (method: string, name?: string, version = MODERN): Record<string, string> {
  return { 'mcp-protocol-version': version, 'mcp-method': method, ...(name === undefined ? {} : { 'mcp-name': name }) }
}

async function withModernUpstream (t: Teardown, legacy: 'stateless' | 'reject'): Promise<ModernUpstream> {
  const upstream = await startModernUpstream(legacy)
  t.teardown(() => upstream.close())
  return upstream
}

t.test('Base64 sentinel decoding', async (t) => {
  t.equal(decodeHeaderValue('plain-name'), 'plain-name')
  t.equal(decodeHeaderValue('=?base64?SGVsbG8sIOS4lueVjA==?='), 'Hello, 世界')
  t.equal(decodeHeaderValue('=?base64?IHBhZGRlZCA=?='), ' padded ')
  t.equal(decodeHeaderValue('=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?='), '=?base64?literal?=')
  t.equal(decodeHeaderValue('=?base64?not base64!?='), undefined, 'invalid alphabet')
  t.equal(decodeHeaderValue('=?base64?QQ?='), undefined, 'non-canonical (missing padding)')
  t.equal(decodeHeaderValue('=?base64?/w==?='), undefined, 'not UTF-8')
  t.equal(decodeHeaderValue('=?BASE64?QUJD?='), '=?BASE64?QUJD?=', 'markers are case-sensitive: not encoded')
  for (const value of ['plain-name', 'Hello, 世界', ' padded ', 'line1\nline2', '=?base64?literal?=', 'file:///a b.txt']) {
    t.equal(decodeHeaderValue(encodeHeaderValue(value)), value, `round trip: ${JSON.stringify(value)}`)
  }
  t.equal(encodeHeaderValue('us-west1'), 'us-west1', 'plain ASCII stays plain')
  t.equal(encodeHeaderValue('Hello, 世界'), '=?base64?SGVsbG8sIOS4lueVjA==?=', 'the spec\'s example')
})

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

t.test('modern requests are stateless: forwarded with no session, never a 404', async (t) => {
  const upstream = await withModernUpstream(t, 'stateless')
  const gateway = await withGateway(t, { config: { ...redisSection('redis', redis, 'modern:'), routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`

  const discover = await post(url, modernCall(1, 'server/discover'), undefined, modernHeaders('server/discover'))
  t.equal(discover.status, 200)
  t.match(discover.messages, [{ id: 1, result: { supportedVersions: Array } }])
  t.equal(discover.headers.get('mcp-session-id'), null, 'no session minted')

  const call = await post(url, modernCall(2, 'tools/call', { name: 'echo', arguments: { text: 'hi' } }), undefined, modernHeaders('tools/call', 'echo'))
  t.equal(call.status, 200)
  t.match(call.messages, [{ id: 2, result: { content: [{ type: 'text', text: 'hi' }] } }])

  const withStaleSession = await post(url, modernCall(3, 'tools/call', { name: 'echo', arguments: { text: 'x' } }), mintSessionId(), modernHeaders('tools/call', 'echo'))
  t.equal(withStaleSession.status, 200, 'an Mcp-Session-Id on a modern request is ignored, not a 404')
  t.equal(upstream.received.at(-1)?.headers['mcp-session-id'], undefined, 'and not forwarded')

  const read = await post(url, modernCall(4, 'resources/read', { uri: 'demo://greeting' }), undefined, modernHeaders('resources/read', 'demo://greeting'))
  t.equal(read.status, 200)
  t.match(read.messages, [{ result: { contents: [{ text: 'Hello from the modern upstream' }] } }])

  const encodedName = Buffer.from('greet').toString('base64')
  const prompt = await post(url, modernCall(5, 'prompts/get', { name: 'greet', arguments: { name: 'Ada' } }), undefined, modernHeaders('prompts/get', `=?base64?${encodedName}?=`))
  t.equal(prompt.status, 200, 'a Base64-encoded Mcp-Name that decodes to the body value passes')

  if (gateway.config.redis !== null) t.same(await redis.client().keys('modern:*'), [], 'nothing stored for modern traffic')
  t.match(gateway.logs.filter((line) => line.msg === 'request completed').at(-1), { era: 'modern' })
})

t.test('modern header validation at the edge (-32020, -32022, -32602), before the upstream', async (t) => {
  const upstream = await withModernUpstream(t, 'stateless')
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`
  const echo = (id: number): Record<string, unknown> => modernCall(id, 'tools/call', { name: 'echo', arguments: { text: 'x' } })
  const cases: Array<{ name: string, body: Record<string, unknown>, headers: Record<string, string>, code: number, message?: RegExp }> = [
    { name: 'Mcp-Method missing', body: echo(1), headers: { 'mcp-protocol-version': MODERN, 'mcp-name': 'echo' }, code: -32020, message: /Mcp-Method/ },
    { name: 'Mcp-Method mismatch', body: echo(2), headers: modernHeaders('tools/list', 'echo'), code: -32020, message: /Mcp-Method/ },
    { name: 'Mcp-Name missing', body: echo(3), headers: modernHeaders('tools/call'), code: -32020, message: /Mcp-Name/ },
    { name: 'Mcp-Name mismatch', body: echo(4), headers: modernHeaders('tools/call', 'other'), code: -32020, message: /Mcp-Name/ },
    { name: 'Mcp-Name invalid Base64', body: echo(5), headers: modernHeaders('tools/call', '=?base64?%%%?='), code: -32020, message: /Mcp-Name/ },
    { name: 'Mcp-Name vs params.uri', body: modernCall(6, 'resources/read', { uri: 'demo://greeting' }), headers: modernHeaders('resources/read', 'demo://other'), code: -32020, message: /params\.uri/ },
    { name: 'Mcp-Name vs prompts/get name', body: modernCall(7, 'prompts/get', { name: 'greet' }), headers: modernHeaders('prompts/get', 'nope'), code: -32020 },
    { name: 'header version differs from _meta', body: echo(8), headers: modernHeaders('tools/call', 'echo', '2026-08-01'), code: -32020, message: /protocol version/ },
    { name: 'MCP-Protocol-Version missing', body: echo(9), headers: { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }, code: -32020, message: /MCP-Protocol-Version/ },
    { name: 'unknown modern version', body: modernCall(10, 'tools/list', {}, '2027-01-01'), headers: modernHeaders('tools/list', undefined, '2027-01-01'), code: -32022 },
    { name: 'modern header without _meta', body: { jsonrpc: '2.0', id: 11, method: 'tools/list', params: {} }, headers: modernHeaders('tools/list'), code: -32602 },
    { name: 'initialize with a modern header', body: initializeRequest(12), headers: modernHeaders('initialize'), code: -32020 }
  ]
  const before = upstream.received.length
  for (const testCase of cases) {
    const answer = await post(url, testCase.body, undefined, testCase.headers)
    t.equal(answer.status, 400, `${testCase.name}: 400`)
    const body = JSON.parse(answer.text) as { id: unknown, error: { code: number, message: string, data?: unknown } }
    t.equal(body.error.code, testCase.code, `${testCase.name}: ${testCase.code}`)
    t.equal(body.id, testCase.body.id, `${testCase.name}: the request id is echoed`)
    if (testCase.message !== undefined) t.match(body.error.message, testCase.message, `${testCase.name}: names the header`)
  }
  t.equal(upstream.received.length, before, 'no refused request reached the upstream')

  const unsupported = await post(url, modernCall(13, 'tools/list', {}, '2027-01-01'), undefined, modernHeaders('tools/list', undefined, '2027-01-01'))
  t.same((JSON.parse(unsupported.text) as { error: { data: unknown } }).error.data, { supported: ['2026-07-28'], requested: '2027-01-01' }, '-32022 lists the supported versions')

  const notification = await post(url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, _meta: envelope } }, undefined, { 'mcp-protocol-version': MODERN, 'mcp-method': 'notifications/cancelled' })
  t.equal(notification.status, 202, 'a modern notification is forwarded; the upstream accepts it')
})

t.test('GET and DELETE with a modern version and no session get 405', async (t) => {
  const upstream = await withModernUpstream(t, 'stateless')
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
  for (const method of ['GET', 'DELETE']) {
    const answer = await request(`${gateway.origin}/mcp`, { method, headers: { 'mcp-protocol-version': MODERN } })
    t.equal(answer.status, 405, method)
    t.equal(answer.headers.get('allow'), 'POST')
  }
  t.equal((await request(`${gateway.origin}/mcp`, { method: 'GET' })).status, 400, 'a legacy GET without session is still a 400')
})

for (const kind of storeKinds) {
  t.test(`${kind} store: legacy version rules and batches`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'json' })
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis, `versions-${kind}:`), routes: [{ path: '/mcp', upstream: upstream.url }] } })
    const url = `${gateway.origin}/mcp`
    const sessionId = await openSession(url)
    const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }

    t.equal((await post(url, toolsList, sessionId)).status, 200, 'no header: served as 2025-03-26')
    t.equal((await post(url, toolsList, sessionId, { 'mcp-protocol-version': '2025-11-25' })).status, 200)
    for (const bad of ['1999-01-01', 'banana', '2025-11-25, 2025-06-18', '']) {
      const answer = await post(url, toolsList, sessionId, { 'mcp-protocol-version': bad })
      t.equal(answer.status, 400, `MCP-Protocol-Version ${JSON.stringify(bad)}`)
      t.match(JSON.parse(answer.text), { id: 2, error: { code: -32000, message: /unsupported MCP-Protocol-Version/ } })
    }
    t.equal((await post(url, toolsList, mintSessionId(), { 'mcp-protocol-version': 'banana' })).status, 404, 'the session check comes first')
    const badDelete = await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, 'mcp-protocol-version': 'banana' } })
    t.equal(badDelete.status, 400)
    t.equal((await post(url, toolsList, sessionId)).status, 200, 'a refused DELETE does not end the session')

    const batch = [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { jsonrpc: '2.0', id: 2, method: 'resources/list' }]
    const refused = await post(url, batch, sessionId)
    t.equal(refused.status, 400, 'a batch on a 2025-11-25 session')
    t.match(JSON.parse(refused.text), { id: null, error: { code: -32600, message: /batches/ } })

    const oldSession = await post(url, initializeRequest(1, '2025-03-26'))
    const oldSessionId = oldSession.headers.get('mcp-session-id') as string
    t.equal((await gateway.app.sessionStore.get(oldSessionId))?.protocolVersion, '2025-03-26')
    const before = upstream.received.length
    const accepted = await post(url, batch, oldSessionId, { 'mcp-protocol-version': '2025-03-26' })
    t.not(accepted.status, 400, 'a batch on a 2025-03-26 session is forwarded')
    t.equal(upstream.received.length, before + 1)
    t.equal(upstream.received.at(-1)?.body, JSON.stringify(batch))
  })
}

t.test('getStream: forward sends a legacy GET on a live session to the upstream', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, getStream: 'forward' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  t.equal((await request(url, { method: 'GET', headers: { 'mcp-session-id': mintSessionId() } })).status, 404, 'the session check still comes first')
  const before = upstream.received.length
  const answer = await request(url, { method: 'GET', headers: { 'mcp-session-id': sessionId, accept: 'text/event-stream' } })
  t.equal(upstream.received.length, before + 1, 'forwarded')
  t.equal(upstream.received.at(-1)?.method, 'GET')
  t.equal(upstream.received.at(-1)?.headers['mcp-session-id'], undefined)
  t.equal(answer.status, 405, "the stateless demo upstream's own answer")
})
