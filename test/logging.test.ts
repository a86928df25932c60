import t from 'tap'
import type { Test } from 'tap'
import type { TestGateway } from './helpers/gateway.js'
import { withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, post, request } from './helpers/mcp-http.js'

/* One JSON line per request, with a shortened session id, never a secret (docs/operating.md). */

/** A session's life with credentials on every request: initialize, use, DELETE, use after DELETE. */
async function loggedSession (t: Test): Promise<{ gateway: TestGateway, sessionId: string }> {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`
  const secret = 'Bearer super-secret-token-value'
  const initialize = await post(url, initializeRequest(1), undefined, { authorization: secret, cookie: 'sid=cookie-secret' })
  const sessionId = initialize.headers.get('mcp-session-id') as string
  await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, sessionId, { authorization: secret })
  await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, authorization: secret } })
  await post(url, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, sessionId)
  return { gateway, sessionId }
}

t.test('one line per request with route, methods, status, duration and a short session id', async (t) => {
  const { gateway, sessionId } = await loggedSession(t)
  const requestLines = gateway.logs.filter((line) => line.msg === 'request completed')
  t.equal(requestLines.length, 4, 'exactly one line per request')
  t.match(requestLines[0], { route: '/mcp', httpMethod: 'POST', rpcMethod: 'initialize', status: 200, session: `${sessionId.slice(0, 8)}…`, outcome: 'session created', reqId: String })
  t.type(requestLines[0]?.durationMs, 'number')
  t.match(requestLines[1], { rpcMethod: 'tools/list', status: 200 })
  t.match(requestLines[2], { httpMethod: 'DELETE', status: 204, outcome: 'session terminated' })
  t.match(requestLines[3], { status: 404, error: 'MCPGW_SESSION_NOT_FOUND' })
})

t.test('no secrets in the log: session ids, Authorization, cookies', async (t) => {
  const { gateway, sessionId } = await loggedSession(t)
  const everything = gateway.rawLogs.join('\n')
  t.notMatch(everything, sessionId, 'the full session id is never logged')
  t.notMatch(everything, 'super-secret-token-value', 'the Authorization header is never logged')
  t.notMatch(everything, 'cookie-secret', 'cookies are never logged')
})

t.test('pino redaction covers headers if anything logs a request with them', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const headers = { authorization: 'Bearer leaked', cookie: 'c=leaked', 'mcp-session-id': 'leaked-id', accept: 'text/event-stream' }
  gateway.app.log.info({ headers }, 'headers probe')
  t.same(gateway.logs.find((line) => line.msg === 'headers probe')?.headers, { authorization: '[redacted]', cookie: '[redacted]', 'mcp-session-id': '[redacted]', accept: 'text/event-stream' })
  gateway.app.log.info({ req: { method: 'POST', url: '/mcp', headers } }, 'request probe')
  t.ok(gateway.logs.some((line) => line.msg === 'request probe'))
  t.notMatch(gateway.rawLogs.join('\n'), 'leaked')
})

t.test('LOG_LEVEL overrides log.level', async (t) => {
  const upstream = await withUpstream(t)
  const quiet = await withGateway(t, { config: { log: { level: 'info' }, routes: [{ path: '/mcp', upstream: upstream.url }] }, env: { LOG_LEVEL: 'warn' } })
  await post(`${quiet.origin}/mcp`, initializeRequest(1))
  t.equal(quiet.logs.filter((line) => line.msg === 'request completed').length, 0, 'info lines suppressed by LOG_LEVEL=warn')
  t.ok(quiet.logs.some((line) => line.level === 40), 'warnings still written (in-memory store warning)')
})

t.test('an invalid LOG_LEVEL is a config error', async (t) => {
  const upstream = await withUpstream(t)
  await t.rejects(withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] }, env: { LOG_LEVEL: 'chatty' } }), { name: 'ConfigError', message: /^LOG_LEVEL: must be one of/ })
})
