import t from 'tap'
import { withGateway } from './helpers/fixtures.js'
import { metricsText, total } from './helpers/metrics.js'
import { openSession, request, LATEST_LEGACY_VERSION } from './helpers/mcp-http.js'
import { modernAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * A client body nested deeper than the gateway accepts (64 levels) is
 * refused at the edge, 400 with JSON-RPC -32600 (docs/errors.md, MCPGW_JSON_TOO_DEEP): never
 * forwarded, never bridged, and never counted as an upstream failure.
 */

/** A tools/call whose arguments hold `levels` nested arrays: the body nests 3 + levels deep. */
function nestedCall (id: number, levels: number): string {
  return `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"deep":${'['.repeat(levels)}${']'.repeat(levels)}}}}`
}

const ENVELOPE_LEVELS = 3
/** The deepest body the gateway accepts (docs/errors.md, MCPGW_JSON_TOO_DEEP). */
const MAX_JSON_DEPTH = 64
const TOO_DEEP = /nests JSON deeper than the gateway accepts/
const headers = (sessionId: string): Record<string, string> => ({ 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION })

for (const upstreamEra of ['legacy', 'modern'] as const) {
  t.test(`${upstreamEra} route: 45,000 levels are refused at the edge`, async (t) => {
    const upstream = await withScriptedUpstream(t, upstreamEra === 'modern' ? modernAnswers : undefined)
    const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra }] } })
    const url = `${gateway.origin}/mcp`
    const sessionId = await openSession(url)
    const before = upstream.received.length
    const errorsBefore = total(await metricsText(gateway.origin), 'mcpgw_upstream_errors_total')

    const answer = await request(url, { rawBody: nestedCall(2, 45_000), headers: headers(sessionId) })
    t.equal(answer.status, 400)
    t.match(JSON.parse(answer.text), { jsonrpc: '2.0', error: { code: -32600, message: TOO_DEEP } })
    t.match(gateway.logs.filter((line) => line.msg === 'request completed').at(-1), { status: 400, error: 'MCPGW_JSON_TOO_DEEP' })
    t.equal(upstream.received.length, before, 'nothing reached the upstream')
    t.equal(total(await metricsText(gateway.origin), 'mcpgw_upstream_errors_total'), errorsBefore, 'not an upstream error')
  })

  t.test(`${upstreamEra} route: ${MAX_JSON_DEPTH} levels pass, ${MAX_JSON_DEPTH + 1} do not`, async (t) => {
    const upstream = await withScriptedUpstream(t, upstreamEra === 'modern' ? modernAnswers : undefined)
    const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra }] } })
    const url = `${gateway.origin}/mcp`
    const sessionId = await openSession(url)

    const deepest = await request(url, { rawBody: nestedCall(3, MAX_JSON_DEPTH - ENVELOPE_LEVELS), headers: headers(sessionId) })
    t.equal(deepest.status, 200, `${MAX_JSON_DEPTH} levels are accepted`)
    t.match(upstream.received.at(-1)?.message, { id: 3, method: 'tools/call' }, 'and reach the upstream')
    const before = upstream.received.length

    const tooDeep = await request(url, { rawBody: nestedCall(4, MAX_JSON_DEPTH - ENVELOPE_LEVELS + 1), headers: headers(sessionId) })
    t.equal(tooDeep.status, 400, `${MAX_JSON_DEPTH + 1} levels are refused`)
    t.match(JSON.parse(tooDeep.text), { error: { code: -32600, message: TOO_DEEP } })
    t.equal(upstream.received.length, before)
  })
}

t.test('brackets inside strings do not count', async (t) => {
  const upstream = await withScriptedUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  const body = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'echo', arguments: { text: '[{'.repeat(1000) + '\\"[' } } })
  t.equal((await request(url, { rawBody: body, headers: headers(sessionId) })).status, 200)
})
