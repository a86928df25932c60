import t from 'tap'
import { withGateway, type Teardown } from './helpers/fixtures.js'
import { LATEST_LEGACY_VERSION, openSession, post } from './helpers/mcp-http.js'
import { startModernUpstream, type ModernUpstream } from './helpers/modern-upstream.js'
import { json, modernAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * A 2026-07-28 server stamps its results with envelope keys in `_meta` (its
 * `io.modelcontextprotocol/serverInfo`, say). They are modern vocabulary: a legacy client behind the
 * era bridge gets results without them, while a server's own `_meta` keys reach it unchanged
 * (docs/era-bridge.md).
 */

const ENVELOPE_PREFIX = 'io.modelcontextprotocol/'
const legacyHeaders = { 'mcp-protocol-version': LATEST_LEGACY_VERSION }

function envelopeKeys (result: unknown): string[] {
  const meta = (result as { _meta?: Record<string, unknown> } | undefined)?._meta ?? {}
  return Object.keys(meta).filter((key) => key.startsWith(ENVELOPE_PREFIX))
}

async function withModernUpstream (t: Teardown): Promise<ModernUpstream> {
  const upstream = await startModernUpstream('reject')
  t.teardown(() => upstream.close())
  return upstream
}

t.test('SDK v2 modern-only upstream: a bridged tools/call result carries no envelope keys', async (t) => {
  const upstream = await withModernUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  const answer = await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } }, sessionId, legacyHeaders)
  t.equal(answer.status, 200)
  const response = answer.messages.at(-1) as { id: number, result: Record<string, unknown> }
  t.match(response, { id: 2, result: { content: [{ type: 'text', text: 'hi' }] } })
  t.notOk('resultType' in response.result, 'no resultType')
  t.same(envelopeKeys(response.result), [], 'no io.modelcontextprotocol/ key in _meta')
})

t.test('scripted upstream: the envelope keys go, the server\'s own _meta key stays', async (t) => {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      modernAnswers(exchange)
      return
    }
    json(exchange.response, {
      jsonrpc: '2.0',
      id: exchange.message.id,
      result: {
        resultType: 'complete',
        content: [{ type: 'text', text: 'ok' }],
        _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'scripted', version: '1' }, 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'com.example/trace': 'abc' }
      }
    })
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  const answer = await post(url, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'anything', arguments: {} } }, sessionId, legacyHeaders)
  t.equal(answer.status, 200)
  t.same(answer.messages, [{ jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text: 'ok' }], _meta: { 'com.example/trace': 'abc' } } }])
})

t.test('a modern upstream\'s HTTP 404 for one request reaches the legacy client in-band, never as "session not found"', async (t) => {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method === 'tools/call') {
      json(exchange.response, { jsonrpc: '2.0', id: exchange.message.id, error: { code: -32601, message: 'Method not found' } }, 404)
      return
    }
    if (exchange.message?.method === 'prompts/get') {
      exchange.response.writeHead(404, { 'content-type': 'text/plain' }).end('no such thing')
      return
    }
    modernAnswers(exchange)
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  const answer = await post(url, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'gone', arguments: {} } }, sessionId, legacyHeaders)
  t.equal(answer.status, 200, 'HTTP 200: the session is fine')
  t.same(answer.messages, [{ jsonrpc: '2.0', id: 7, error: { code: -32601, message: 'Method not found' } }], 'the upstream\'s error, under the client\'s id')
  const notJsonRpc = await post(url, { jsonrpc: '2.0', id: 8, method: 'prompts/get', params: { name: 'x' } }, sessionId, legacyHeaders)
  t.equal(notJsonRpc.status, 502, 'a 404 that is no JSON-RPC error: the upstream\'s answer cannot be bridged')
  t.equal((await post(url, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, sessionId, legacyHeaders)).status, 200, 'the session goes on')
})
