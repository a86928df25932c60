import t, { type Test } from 'tap'
import { GatewayError } from '../src/errors.js'
import { parseRequestAuthority } from '../src/security/request-authority.js'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis } from './helpers/fixtures.js'
import { initializeRequest } from './helpers/mcp-http.js'
import { rawRequest, type RawAnswer } from './helpers/raw-http.js'
import { json, legacyAnswers, withScriptedUpstream, type ScriptedExchange } from './helpers/scripted-upstream.js'

/*
 * The request's authority is read once at the edge (docs/security.md, "The request's authority"):
 * Host, or behind trustProxy X-Forwarded-Host and -Proto. One the gateway cannot use whole gets 400
 * MCPGW_INVALID_AUTHORITY before anything else, in both eras and for every method; the Host
 * allowlist, the public URL and the OAuth rewrite all read that one result. Against a real upstream
 * that challenges every request (an OAuth-protected server): such a request once ended the process.
 */

t.test('what parses, and what is refused with the reason', async (t) => {
  const accepted: Array<[string, string, string]> = [
    ['example.com', 'http', 'http://example.com'],
    ['MCP.Example.COM:8443', 'https', 'https://mcp.example.com:8443'],
    ['example.com.', 'http', 'http://example.com.'],
    ['127.0.0.1:080', 'http', 'http://127.0.0.1:80'],
    ['[::1]:3000', 'HTTP', 'http://[::1]:3000'],
    ['[0:0::1]', 'http', 'http://[::1]'],
    ['localhost', 'http', 'http://localhost']
  ]
  for (const [host, protocol, origin] of accepted) t.equal(parseRequestAuthority(host, protocol).origin, origin, `${host} over ${protocol}`)
  t.equal(parseRequestAuthority('[::1]:3000', 'http').hostname, '[::1]', 'the hostname of an IPv6 literal keeps its brackets, as URL has it')

  const refused: Array<[string | undefined, string | undefined, RegExp]> = [
    ['x@127.0.0.1:8080', 'http', /userinfo/],
    ['x@mcp.example.com', 'http', /userinfo/],
    ['', 'http', /names no host/],
    [undefined, 'http', /names no host/],
    ['example.com:', 'http', /port/],
    ['example.com:0', 'http', /port/],
    ['example.com:65536', 'http', /port/],
    ['example.com:8o', 'http', /port/],
    ['a_b', 'http', /not a host name/],
    ['a b', 'http', /not a host name/],
    [' example.com', 'http', /not a host name/],
    ['a..b', 'http', /not a host name/],
    ['-a.example', 'http', /not a host name/],
    ['a.example", error="x', 'http', /not a host name/],
    ['999.999.999.999', 'http', /not a host name/],
    ['::1', 'http', /in brackets/],
    ['[::1', 'http', /bracketed/],
    ['[fe80::1%eth0]', 'http', /bracketed/],
    ['[::1]x', 'http', /only a port/],
    ['h\u00e9.example', 'http', /not a host name/],
    ['a'.repeat(400), 'http', /too long/],
    ['example.com', 'ftp', /protocol/],
    ['example.com', undefined, /protocol/]
  ]
  for (const [host, protocol, reason] of refused) {
    const outcome = ((): unknown => {
      try {
        return parseRequestAuthority(host, protocol)
      } catch (error) {
        return error
      }
    })()
    t.ok(outcome instanceof GatewayError && outcome.code === 'MCPGW_INVALID_AUTHORITY' && outcome.statusCode === 400 && reason.test(outcome.message), `${JSON.stringify(host)} over ${String(protocol)}: refused, ${String(reason)}`)
  }
})

const MODERN = '2026-07-28'
/** A 2026-07-28 request: no session, per-request metadata in the body and the headers. */
const modernToolsList = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/list',
  params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientInfo': { name: 'test', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} } }
})
const modernHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list' }
const legacyHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

/** An OAuth-protected server: initialize is served (so that sessions exist), everything else gets a challenge naming its internal URL. */
function challengeAfterInitialize (exchange: ScriptedExchange): void {
  if (exchange.message?.method === 'initialize') {
    legacyAnswers(exchange)
    return
  }
  json(exchange.response, { error: 'unauthorized' }, 401, { 'www-authenticate': 'Bearer resource_metadata="http://10.0.0.7/.well-known/oauth-protected-resource/mcp", scope="tools"' })
}

function refusedAuthority (t: Test, answer: RawAnswer, what: string): void {
  t.equal(answer.status, 400, `${what}: 400`)
  const body = JSON.parse(answer.body) as { error?: { code?: number, message?: string } }
  t.equal(body.error?.code, -32000, `${what}: a coded JSON-RPC error`)
  t.match(body.error?.message, /^Bad Request: the request's Host .* is not an authority the gateway can use: /, `${what}: says what is wrong`)
  t.ok(typeof answer.headers['x-request-id'] === 'string', `${what}: carries x-request-id`)
}

t.test('a host with userinfo is refused in both eras and for every method, and the process lives', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t, challengeAfterInitialize)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'authority:' }, routes: [{ path: '/mcp', upstream: upstream.url, getStream: 'forward' }] } })
  const port = Number(new URL(gateway.origin).port)
  const host = `x@127.0.0.1:${port}`

  const initialized = await rawRequest(port, { headers: { ...legacyHeaders, host: `127.0.0.1:${port}` }, body: JSON.stringify(initializeRequest()) })
  const sessionId = initialized.headers['mcp-session-id'] as string
  t.equal(initialized.status, 200, 'a session exists to aim at')
  const received = upstream.received.length

  refusedAuthority(t, await rawRequest(port, { headers: { ...modernHeaders, host }, body: modernToolsList }), 'a 2026-07-28 tools/list without a token')
  refusedAuthority(t, await rawRequest(port, { headers: { ...legacyHeaders, host }, body: JSON.stringify(initializeRequest()) }), 'a legacy initialize')
  refusedAuthority(t, await rawRequest(port, { headers: { ...legacyHeaders, host, 'mcp-session-id': sessionId }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) }), 'a legacy session POST')
  refusedAuthority(t, await rawRequest(port, { method: 'GET', headers: { host, accept: 'text/event-stream', 'mcp-session-id': sessionId } }), 'a GET stream')
  refusedAuthority(t, await rawRequest(port, { method: 'DELETE', headers: { host, 'mcp-session-id': sessionId } }), 'a DELETE')
  refusedAuthority(t, await rawRequest(port, { method: 'PUT', headers: { host } }), 'another method')
  refusedAuthority(t, await rawRequest(port, { method: 'GET', path: '/.well-known/oauth-protected-resource/mcp', headers: { host } }), 'the OAuth metadata')
  t.equal(upstream.received.length, received, 'the upstream saw none of them')

  t.equal((await fetch(`${gateway.origin}/healthz`)).status, 200, 'still serving')
  const valid = await rawRequest(port, { headers: { ...legacyHeaders, host: `localhost:${port}`, 'mcp-session-id': sessionId }, body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }) })
  t.equal(valid.status, 401, 'the upstream\'s challenge still reaches a client that names a usable host')
  t.equal(valid.headers['www-authenticate'], `Bearer resource_metadata="http://localhost:${port}/.well-known/oauth-protected-resource/mcp", scope="tools"`, 'rewritten to the gateway\'s metadata, from the parsed authority')
  t.same(gateway.logs.filter((line) => (line.level as number) >= 50), [], 'nothing logged as an error')
})

t.test('the session a refused GET aimed at still idles out on time (no stream guard left behind)', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t, challengeAfterInitialize)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'authority-idle:' }, sessions: { idleTimeout: '1s' }, routes: [{ path: '/mcp', upstream: upstream.url, getStream: 'forward' }] } })
  const port = Number(new URL(gateway.origin).port)
  const initialized = await rawRequest(port, { headers: { ...legacyHeaders, host: `127.0.0.1:${port}` }, body: JSON.stringify(initializeRequest()) })
  const sessionId = initialized.headers['mcp-session-id'] as string
  for (let index = 0; index < 3; index++) {
    refusedAuthority(t, await rawRequest(port, { method: 'GET', headers: { host: `x@127.0.0.1:${port}`, accept: 'text/event-stream', 'mcp-session-id': sessionId } }), 'a GET with userinfo')
  }
  // Read without sliding it (the admin read), until the idle timeout has ended it.
  await eventually(async () => await gateway.app.sessionStore.get(sessionId) === null, { timeout: 10_000, interval: 200, description: 'the session to idle out' })
  t.pass('the session idled out')
})

t.test('the Host allowlist reads the parsed host: userinfo does not smuggle an allowed name', async (t) => {
  const upstream = await withScriptedUpstream(t, challengeAfterInitialize)
  const gateway = await withGateway(t, { config: { security: { allowedHosts: ['mcp.example.com'] }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const port = Number(new URL(gateway.origin).port)
  refusedAuthority(t, await rawRequest(port, { headers: { ...modernHeaders, host: 'x@mcp.example.com' }, body: modernToolsList }), 'x@ an allowed host')
  t.equal((await rawRequest(port, { headers: { ...modernHeaders, host: 'other.example.com' }, body: modernToolsList })).status, 403, 'a usable host not on the list is still 403')
  const allowed = await rawRequest(port, { headers: { ...modernHeaders, host: 'MCP.example.com:443' }, body: modernToolsList })
  t.equal(allowed.status, 401, 'the allowed host, in any case and with a port, passes to the upstream')
  t.equal(allowed.headers['www-authenticate'], 'Bearer resource_metadata="http://mcp.example.com:443/.well-known/oauth-protected-resource/mcp", scope="tools"')
  t.equal((await fetch(`${gateway.origin}/healthz`)).status, 200)
})

t.test('behind trustProxy the forwarded host and protocol are parsed and checked like Host', async (t) => {
  const upstream = await withScriptedUpstream(t, challengeAfterInitialize)
  const gateway = await withGateway(t, { config: { listen: { host: '127.0.0.1', port: 0, trustProxy: true }, security: { allowedHosts: ['127.0.0.1', 'edge.example.com'] }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const port = Number(new URL(gateway.origin).port)
  const host = `127.0.0.1:${port}`
  refusedAuthority(t, await rawRequest(port, { headers: { ...modernHeaders, host, 'x-forwarded-host': 'a_b' }, body: modernToolsList }), 'X-Forwarded-Host a_b')
  refusedAuthority(t, await rawRequest(port, { headers: { ...modernHeaders, host, 'x-forwarded-host': 'x@edge.example.com' }, body: modernToolsList }), 'X-Forwarded-Host with userinfo')
  refusedAuthority(t, await rawRequest(port, { headers: { ...modernHeaders, host, 'x-forwarded-host': 'edge.example.com', 'x-forwarded-proto': 'gopher' }, body: modernToolsList }), 'X-Forwarded-Proto gopher')
  t.equal((await rawRequest(port, { headers: { ...modernHeaders, host, 'x-forwarded-host': 'evil.example.com' }, body: modernToolsList })).status, 403, 'a forwarded host off the allowlist is 403')
  const forwarded = await rawRequest(port, { headers: { ...modernHeaders, host, 'x-forwarded-host': 'proxy.internal, edge.example.com', 'x-forwarded-proto': 'https' }, body: modernToolsList })
  t.equal(forwarded.status, 401)
  t.equal(forwarded.headers['www-authenticate'], 'Bearer resource_metadata="https://edge.example.com/.well-known/oauth-protected-resource/mcp", scope="tools"', 'the challenge names the public origin the client used')
})

t.test('a gateway listening on every address (no allowlist) still refuses an unusable Host', async (t) => {
  const upstream = await withScriptedUpstream(t, challengeAfterInitialize)
  const gateway = await withGateway(t, { config: { listen: { host: '0.0.0.0', port: 0 }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const port = Number(new URL(gateway.origin).port)
  refusedAuthority(t, await rawRequest(port, { headers: { ...modernHeaders, host: 'a_b' }, body: modernToolsList }), 'Host a_b')
  refusedAuthority(t, await rawRequest(port, { headers: { ...legacyHeaders, host: 'gateway.example.com:99999' }, body: JSON.stringify(initializeRequest()) }), 'a port out of range')
  t.equal((await rawRequest(port, { headers: { ...modernHeaders, host: 'gateway.example.com' }, body: modernToolsList })).status, 401, 'a usable host is served')
  t.equal((await fetch(`${gateway.origin}/healthz`)).status, 200)
})
