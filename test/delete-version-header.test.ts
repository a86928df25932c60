import t from 'tap'
import { mintSessionId } from '../src/sessions/session-id.js'
import { redisSection, storeKinds, withGateway, withRedis } from './helpers/fixtures.js'
import { LATEST_LEGACY_VERSION, openSession, post, request } from './helpers/mcp-http.js'
import { withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * DELETE checks the session before the MCP-Protocol-Version header, as every session request does
 * (MCP 2025-11-25, Basic › Transports › Session Management; docs/errors.md): an unknown id is 404
 * whatever the version header says, and a live session with a bad version header is 400 and is not
 * ended by the refused request.
 */

const BAD_VERSION = '1999-01-01'

for (const kind of storeKinds) {
  t.test(`${kind}: DELETE with an unknown id and a bad version header: 404`, async (t) => {
    const redis = await withRedis(t)
    const upstream = await withScriptedUpstream(t)
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis), routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
    const answer = await request(`${gateway.origin}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': mintSessionId(), 'mcp-protocol-version': BAD_VERSION } })
    t.equal(answer.status, 404)
    t.match(JSON.parse(answer.text), { jsonrpc: '2.0', id: null, error: { code: -32001 } })
  })

  t.test(`${kind}: DELETE with a live id and a bad version header: 400, and the session lives on`, async (t) => {
    const redis = await withRedis(t)
    const upstream = await withScriptedUpstream(t)
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis), routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
    const url = `${gateway.origin}/mcp`
    const sessionId = await openSession(url)
    const refused = await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, 'mcp-protocol-version': BAD_VERSION } })
    t.equal(refused.status, 400)
    t.match(JSON.parse(refused.text), { jsonrpc: '2.0', error: { code: -32000, message: /MCP-Protocol-Version/ } })

    const ping = await post(url, { jsonrpc: '2.0', id: 2, method: 'ping' }, sessionId, { 'mcp-protocol-version': LATEST_LEGACY_VERSION })
    t.equal(ping.status, 200, 'the session still answers')
    const ended = await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION } })
    t.equal(ended.status, 204, 'and a proper DELETE ends it')
  })
}
