import t from 'tap'
import { eventually } from './helpers/eventually.js'
import { withGateway } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import { metricsText, sample } from './helpers/metrics.js'
import { json, modernAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * An `auto` route asks its upstream `server/discover` to learn its era (docs/era-bridge.md). An answer
 * that decides nothing (a 503) is not remembered: the request goes on as legacy, and a later
 * request asks again once the backoff has passed (1 s first). The probe carries the client's
 * Authorization, and mcpgw_upstream_era shows the era decided.
 */

const AUTHORIZATION = 'Bearer client-token'

t.test('a 503 to server/discover is asked again: the route does not stay legacy', async (t) => {
  let discovers = 0
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method === 'server/discover' && discovers++ === 0) {
      json(exchange.response, { jsonrpc: '2.0', id: exchange.message.id, error: { code: -32603, message: 'starting up' } }, 503)
      return
    }
    if (exchange.message?.method === 'initialize') {
      // A modern-only server refuses a legacy initialize.
      json(exchange.response, { jsonrpc: '2.0', id: exchange.message.id, error: { code: -32022, message: 'Unsupported protocol version', data: { supported: ['2026-07-28'] } } }, 400)
      return
    }
    modernAnswers(exchange)
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'auto' }] } })
  const url = `${gateway.origin}/mcp`
  const headers = { authorization: AUTHORIZATION }
  const eraGauge = async (era: string): Promise<number> => sample(await metricsText(gateway.origin), 'mcpgw_upstream_era', { route: '/mcp', era })

  const first = await post(url, initializeRequest(1), undefined, headers)
  t.equal(first.status, 400, 'the first initialize went on as legacy: the upstream refused it')
  t.equal(first.headers.get('mcp-session-id'), null)
  t.equal(upstream.received[0]?.message?.method, 'server/discover', 'the probe came first')
  t.equal(upstream.received[0]?.headers.authorization, AUTHORIZATION, 'the probe carried the client\'s Authorization')
  t.equal(await eraGauge('undecided'), 1, 'undecided after a 503')

  let attempt = 1
  const bridged = await eventually(async () => {
    const answer = await post(url, initializeRequest(++attempt), undefined, headers)
    return answer.status === 200 && answer.headers.get('mcp-session-id') !== null ? answer : undefined
  }, { timeout: 5_000, interval: 200, description: 'an initialize bridged after the probe\'s backoff' })
  t.match(bridged.messages, [{ result: { serverInfo: { name: 'scripted-modern' } } }], 'answered from server/discover')
  t.equal(discovers, 3, 'asked once more after the backoff, then once for the bridged initialize')
  t.ok(upstream.received.filter((exchange) => exchange.message?.method === 'server/discover').every((exchange) => exchange.headers.authorization === AUTHORIZATION), 'every probe carried it')
  t.equal(await eraGauge('modern'), 1, 'mcpgw_upstream_era{era="modern"} 1')
  t.equal(await eraGauge('undecided'), 0)
  t.equal(await eraGauge('legacy'), 0)
})

t.test('a configured era is shown at once', async (t) => {
  const upstream = await withScriptedUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  t.equal(sample(await metricsText(gateway.origin), 'mcpgw_upstream_era', { route: '/mcp', era: 'legacy' }), 1)
})
