import t from 'tap'
import { LEGACY_PROTOCOL_VERSIONS } from '../src/mcp/protocol-versions.js'
import { withGateway, type Teardown } from './helpers/fixtures.js'
import { post } from './helpers/mcp-http.js'
import { startModernUpstream, type ModernUpstream } from './helpers/modern-upstream.js'
import { withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * A 2026-07-28 request carries its version in the MCP-Protocol-Version header and in
 * `params._meta` (2026-07-28, Basic › Transports › Streamable HTTP). A route configured
 * `upstreamEra: legacy` serves the legacy (session) versions only: such a request is refused at the
 * edge with -32022 and the versions it does serve (docs/errors.md, MCPGW_LEGACY_ROUTE), instead of
 * passing through without the session rules. On an `auto` route it still passes through.
 */

const MODERN = '2026-07-28'

function modernCall (id: number): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      name: 'echo',
      arguments: { text: 'hi' },
      _meta: {
        'io.modelcontextprotocol/protocolVersion': MODERN,
        'io.modelcontextprotocol/clientInfo': { name: 'modern-test', version: '1.0.0' },
        'io.modelcontextprotocol/clientCapabilities': {}
      }
    }
  }
}

const modernHeaders = { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'echo' }

async function withModernUpstream (t: Teardown): Promise<ModernUpstream> {
  const upstream = await startModernUpstream('stateless')
  t.teardown(() => upstream.close())
  return upstream
}

t.test('legacy route: a modern request is refused with -32022 and the legacy versions, before the upstream', async (t) => {
  const upstream = await withScriptedUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const answer = await post(`${gateway.origin}/mcp`, modernCall(1), undefined, modernHeaders)
  t.equal(answer.status, 400)
  t.match(JSON.parse(answer.text), { jsonrpc: '2.0', id: 1, error: { code: -32022, data: { supported: [...LEGACY_PROTOCOL_VERSIONS], requested: MODERN } } })
  t.same((JSON.parse(answer.text) as { error: { data: { supported: unknown } } }).error.data.supported, [...LEGACY_PROTOCOL_VERSIONS], 'exactly the legacy versions')
  t.equal(upstream.received.length, 0, 'the upstream saw nothing')
})

t.test('auto route: a modern request passes through', async (t) => {
  const upstream = await withModernUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'auto' }] } })
  const answer = await post(`${gateway.origin}/mcp`, modernCall(2), undefined, modernHeaders)
  t.equal(answer.status, 200)
  t.match(answer.messages, [{ id: 2, result: { content: [{ type: 'text', text: 'hi' }] } }])
  t.ok(upstream.received.some((received) => received.headers['mcp-method'] === 'tools/call'), 'the upstream answered it')
  t.equal(answer.headers.get('mcp-session-id'), null, 'no session')
})
