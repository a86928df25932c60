import t from 'tap'
import { withGateway } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import { legacyAnswers, withScriptedUpstream, type ScriptedExchange } from './helpers/scripted-upstream.js'

/*
 * Cookies stay between a client and the gateway unless a route passes them (docs/security.md,
 * "Cookies"): with several routes on one origin, a browser sends one origin's cookies to every
 * route, so one upstream's Set-Cookie would reach the others' upstreams.
 */

/** A legacy upstream that sets a cookie on every answer. */
function settingCookies (exchange: ScriptedExchange): void {
  exchange.response.setHeader('set-cookie', ['tracker=upstream-a; Path=/', 'other=1; Path=/'])
  legacyAnswers(exchange)
}

t.test('by default Set-Cookie never reaches the client, nor Cookie the upstream', async (t) => {
  const upstream = await withScriptedUpstream(t, settingCookies)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/a', upstream: upstream.url, upstreamEra: 'legacy' }, { path: '/b', upstream: upstream.url, upstreamEra: 'legacy', passCookies: true }] } })
  const initialized = await post(`${gateway.origin}/a`, initializeRequest(), undefined, { cookie: 'session=browser-secret' })
  t.equal(initialized.status, 200)
  t.equal(initialized.headers.get('set-cookie'), null, 'initialize: no Set-Cookie')
  const sessionId = initialized.headers.get('mcp-session-id') as string
  const called = await post(`${gateway.origin}/a`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, sessionId, { cookie: 'session=browser-secret', 'mcp-protocol-version': '2025-11-25' })
  t.equal(called.status, 200)
  t.equal(called.headers.get('set-cookie'), null, 'a forwarded request: no Set-Cookie')
  t.same(upstream.received.map((exchange) => exchange.headers.cookie), [undefined, undefined], 'the upstream saw no Cookie')

  const passed = await post(`${gateway.origin}/b`, initializeRequest(), undefined, { cookie: 'session=browser-secret' })
  t.match(passed.headers.get('set-cookie'), /tracker=upstream-a/, 'passCookies: Set-Cookie passes')
  t.equal(upstream.received.at(-1)?.headers.cookie, 'session=browser-secret', 'and Cookie reaches the upstream')
})
