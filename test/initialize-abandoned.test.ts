import t from 'tap'
import type { Test } from 'tap'
import type { ServerResponse } from 'node:http'
import { eventually } from './helpers/eventually.js'
import { withGateway } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import { metricsText, sample } from './helpers/metrics.js'
import { withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * An initialize waits for the upstream's whole answer before a session can be minted (MCP
 * 2025-11-25, Basic › Transports › Session Management). That wait is bounded by
 * routes[].initializeTimeout (504, docs/errors.md), and a client that leaves before it ends the
 * upstream request too (docs/configuration.md).
 */

/** A client that leaves while the upstream holds what decides its initialize; resolves once the upstream saw it closed. */
async function abandonInitialize (t: Test, upstreamEra: 'legacy' | 'modern'): Promise<TestGateway> {
  const held: ServerResponse[] = []
  const closed: ServerResponse[] = []
  const upstream = await withScriptedUpstream(t, ({ response }) => {
    // Accepted, never answered.
    held.push(response)
    response.once('close', () => closed.push(response))
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra }] } })
  const abandon = new AbortController()
  const pending = fetch(`${gateway.origin}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(initializeRequest()),
    signal: abandon.signal
  }).catch((error: unknown) => error)
  await eventually(() => held.length === 1, { timeout: 10_000, description: 'the upstream to hold the initialize' })
  abandon.abort()
  t.match(await pending, { name: 'AbortError' }, 'the client gave up')
  await eventually(() => closed.length === 1, { timeout: 10_000, description: 'the upstream to see its request closed' })
  return gateway
}

t.test('a client that abandons its initialize: the upstream request is closed', async (t) => {
  await abandonInitialize(t, 'legacy')
  t.pass('the upstream request was closed')
})

t.test('an upstream that sends SSE headers and then nothing: 504 after initializeTimeout', async (t) => {
  const upstream = await withScriptedUpstream(t, ({ response }) => {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    response.flushHeaders()
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy', initializeTimeout: '1s' }] } })
  const before = sample(await metricsText(gateway.origin), 'mcpgw_upstream_errors_total', { route: '/mcp', kind: 'timeout' })
  const started = performance.now()
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(7))
  const seconds = (performance.now() - started) / 1000
  t.equal(answer.status, 504)
  t.ok(seconds < 10, `answered in ${seconds.toFixed(1)} s`)
  t.match(JSON.parse(answer.text), { jsonrpc: '2.0', id: 7, error: { code: -32603, message: /did not answer in time/ } })
  t.match(answer.headers.get('x-request-id'), /./, 'with x-request-id')
  t.equal(answer.headers.get('mcp-session-id'), null, 'no session')
  t.notOk(answer.headers.get('content-type')?.startsWith('text/event-stream'), 'not the upstream\'s stream headers')
  t.equal(sample(await metricsText(gateway.origin), 'mcpgw_upstream_errors_total', { route: '/mcp', kind: 'timeout' }), before + 1, 'counted kind="timeout"')
})

t.test('bridged: server/discover that never answers is bounded by initializeTimeout', async (t) => {
  const upstream = await withScriptedUpstream(t, () => {
    // server/discover accepted, never answered.
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern', timeout: '30s', initializeTimeout: '1s' }] } })
  const started = performance.now()
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(8))
  const seconds = (performance.now() - started) / 1000
  t.equal(answer.status, 504)
  t.ok(seconds < 10, `answered in ${seconds.toFixed(1)} s, not after the route's 30 s timeout`)
  t.match(JSON.parse(answer.text), { id: 8, error: { message: /initializeTimeout/ } })
})

t.test('bridged: a client that leaves during server/discover ends it, and nothing is minted', async (t) => {
  const gateway = await abandonInitialize(t, 'modern')
  t.same((await gateway.app.sessionStore.list({ limit: 10 })).sessions, [], 'nothing minted')
})
