import t from 'tap'
import { withGateway } from './helpers/fixtures.js'
import { request } from './helpers/mcp-http.js'
import { withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * An MCP endpoint answers GET, POST and DELETE (MCP 2025-11-25, Basic › Transports › Streamable
 * HTTP). Any other method on a route's path is 405 with the methods it does answer (RFC 9110
 * §15.5.6: a 405 carries Allow), never a 404 as if the route were not there, and never forwarded.
 */

t.test('OPTIONS, PUT and PATCH on a route: 405 with Allow: GET, POST, DELETE', async (t) => {
  const upstream = await withScriptedUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  for (const method of ['OPTIONS', 'PUT', 'PATCH']) {
    const answer = await request(`${gateway.origin}/mcp`, { method, ...(method === 'OPTIONS' ? {} : { body: { jsonrpc: '2.0', id: 1, method: 'ping' } }) })
    t.equal(answer.status, 405, method)
    t.equal(answer.headers.get('allow'), 'GET, POST, DELETE', `${method}: Allow`)
    t.match(JSON.parse(answer.text), { jsonrpc: '2.0', error: { code: -32000 } }, `${method}: a JSON-RPC error body`)
  }
  t.equal(upstream.received.length, 0, 'nothing forwarded')
})
