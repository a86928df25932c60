import t from 'tap'
import { withGateway, withUpstream } from './helpers/fixtures.js'
import { rawRequest } from './helpers/raw-http.js'

/* CORS answers as browsers ask them (docs/security.md, "Browsers"), checked header by header. */

const APP = 'http://app.example.com:5173'

async function preflight (url: string, origin: string, headers = 'content-type, mcp-session-id'): Promise<Response> {
  return await fetch(url, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': headers } })
}

t.test('an allowed origin\'s preflight: 204 with the MCP methods and headers', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { security: { allowedOrigins: [APP], allowedHosts: ['127.0.0.1'] }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const answer = await preflight(`${gateway.origin}/mcp`, APP)
  t.equal(answer.status, 204)
  t.equal(answer.headers.get('access-control-allow-origin'), APP)
  t.equal(answer.headers.get('access-control-allow-methods'), 'GET, POST, DELETE')
  t.equal(answer.headers.get('access-control-allow-headers'), 'content-type, authorization, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name')
  t.equal(answer.headers.get('access-control-expose-headers'), 'Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Retry-After')
  t.equal(answer.headers.get('access-control-allow-credentials'), null, 'no credentials unless configured')
})

t.test('Mcp-Param-* headers are allowed when asked for', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { security: { allowedOrigins: [APP], allowedHosts: ['127.0.0.1'] }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const answer = await preflight(`${gateway.origin}/mcp`, APP, 'content-type, mcp-param-region, x-other')
  t.match(answer.headers.get('access-control-allow-headers'), /, mcp-param-region$/)
  t.notMatch(answer.headers.get('access-control-allow-headers'), /x-other/)
})

t.test('other origins and other paths get no CORS headers', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { security: { allowedOrigins: [APP], allowedHosts: ['127.0.0.1'], corsCredentials: true }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  t.equal((await preflight(`${gateway.origin}/mcp`, 'http://evil.example.com')).headers.get('access-control-allow-origin'), null, 'another origin')
  t.equal((await preflight(`${gateway.origin}/mcp`, `${APP}/path`)).headers.get('access-control-allow-origin'), null, 'an origin with a path')
  const metrics = await fetch(`${gateway.origin}/metrics`, { headers: { origin: APP } })
  t.equal(metrics.headers.get('access-control-allow-origin'), null, '/metrics answers no origin')
  const allowed = await preflight(`${gateway.origin}/mcp`, APP)
  t.equal(allowed.headers.get('access-control-allow-credentials'), 'true', 'credentials when configured')
})

t.test('what OPTIONS answers besides an allowed preflight: coded errors, as the README says', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { security: { allowedOrigins: [APP], allowedHosts: ['127.0.0.1'] }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const refused = await preflight(`${gateway.origin}/mcp`, 'http://evil.example.com')
  t.equal(refused.status, 403, 'a preflight from another origin: 403 (the Origin check)')
  t.match(await refused.json(), { jsonrpc: '2.0', error: { code: -32000, message: /Origin not allowed/ } })
  const bare = await fetch(`${gateway.origin}/mcp`, { method: 'OPTIONS' })
  t.equal(bare.status, 405, 'OPTIONS without an Origin: 405')
  t.equal(bare.headers.get('allow'), 'GET, POST, DELETE')
  t.match(await bare.json(), { error: { message: /Method not allowed/ } })
  const loose = await fetch(`${gateway.origin}/mcp`, { method: 'OPTIONS', headers: { origin: APP } })
  t.equal(loose.status, 204, 'an allowed origin\'s OPTIONS without Access-Control-Request-Method is answered as a preflight, not with a plain-text 400')
  const metadata = await preflight(`${gateway.origin}/.well-known/oauth-protected-resource/mcp`, 'http://evil.example.com')
  t.equal(metadata.status, 405, 'the OAuth metadata path: 405 for another origin')
  t.equal(metadata.headers.get('allow'), 'GET')
  t.equal((await preflight(`${gateway.origin}/.well-known/oauth-protected-resource/mcp`, APP)).status, 204, 'and 204 for an allowed one')
})

t.test('a preflight with a host the gateway refuses gets no CORS answer: the route refuses it', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { security: { allowedOrigins: [APP], allowedHosts: ['127.0.0.1'] }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const port = Number(new URL(gateway.origin).port)
  const preflightHeaders = { origin: APP, 'access-control-request-method': 'POST' }
  for (const [host, status] of [[`x@127.0.0.1:${port}`, 400], ['a_b', 400], ['evil.example.com', 403]] as const) {
    for (const path of ['/mcp', '/.well-known/oauth-protected-resource/mcp']) {
      const answer = await rawRequest(port, { method: 'OPTIONS', path, headers: { ...preflightHeaders, host } })
      t.equal(answer.status, status, `${host} on ${path}: ${status}`)
      t.equal(answer.headers['access-control-allow-origin'], undefined, 'no CORS headers')
    }
  }
  t.equal((await rawRequest(port, { method: 'OPTIONS', headers: { ...preflightHeaders, host: `127.0.0.1:${port}` } })).status, 204, 'an allowed host: the preflight')
})
