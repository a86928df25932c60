import t from 'tap'
import { request as httpRequest } from 'node:http'
import { isLoopbackAddress, isOriginAllowed, resolveOriginPolicy } from '../src/security/origin-guard.js'
import { withGateway, withUpstream } from './helpers/fixtures.js'
import { initializeRequest } from './helpers/mcp-http.js'

/* DNS-rebinding defence (MCP spec, Transports, Streamable HTTP, Security Warning). Origin and Host, 403 with a JSON-RPC error and no id. */

interface RawAnswer { status: number, body: string, sessionId: string | undefined }

/** A POST with exactly these Host/Origin headers (fetch cannot set Host). */
async function postWith (port: number, headers: Record<string, string>): Promise<RawAnswer> {
  const body = JSON.stringify(initializeRequest(1))
  return await new Promise((resolve, reject) => {
    const outgoing = httpRequest({
      host: '127.0.0.1',
      port,
      path: '/mcp',
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body), ...headers }
    }, (response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => { text += chunk.toString() })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text, sessionId: response.headers['mcp-session-id'] as string | undefined }))
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

t.test('loopback detection and policy resolution', async (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) t.ok(isLoopbackAddress(host), host)
  for (const host of ['0.0.0.0', '10.0.0.1', '::', 'gateway.internal']) t.notOk(isLoopbackAddress(host), host)
  const none = { allowedOrigins: null, allowedHosts: null, corsCredentials: false }
  const localhost = ['localhost', '127.0.0.1', '[::1]']
  t.same(resolveOriginPolicy(none, '127.0.0.1'), { allowedOrigins: localhost.map((hostname) => ({ kind: 'hostname', hostname })), allowedHosts: localhost, originsConfigured: false })
  t.same(resolveOriginPolicy(none, '0.0.0.0'), { allowedOrigins: null, allowedHosts: null, originsConfigured: false }, 'no restriction on other addresses until configured')
  t.same(resolveOriginPolicy({ ...none, allowedOrigins: ['app.example.com'] }, '127.0.0.1'), { allowedOrigins: [{ kind: 'hostname', hostname: 'app.example.com' }], allowedHosts: null, originsConfigured: true }, 'configuration replaces the loopback default')
})

t.test('origins in the three forms people write them', async (t) => {
  const policy = resolveOriginPolicy({ allowedOrigins: ['https://app.example.com:8443', 'web.example.com', 'chrome-extension://*'], allowedHosts: null, corsCredentials: false }, '0.0.0.0')
  const rules = policy.allowedOrigins ?? []
  t.ok(isOriginAllowed('https://app.example.com:8443', rules), 'a full origin matches exactly')
  t.notOk(isOriginAllowed('https://app.example.com', rules), 'another port is another origin')
  t.notOk(isOriginAllowed('http://app.example.com:8443', rules), 'another scheme is another origin')
  t.ok(isOriginAllowed('http://web.example.com:3000', rules), 'a bare hostname is port- and scheme-agnostic')
  t.ok(isOriginAllowed('chrome-extension://abcdef', rules), 'a whole scheme')
  t.notOk(isOriginAllowed('null', rules), 'the opaque null origin')
  t.notOk(isOriginAllowed('not a url', rules), 'garbage')
})

t.test('on loopback with no lists: only localhost origins and hosts', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const port = Number(new URL(gateway.origin).port)
  const before = upstream.received.length

  const evilHost = await postWith(port, { host: 'evil.example.com', origin: 'http://evil.example.com' })
  t.equal(evilHost.status, 403)
  t.same(JSON.parse(evilHost.body), { jsonrpc: '2.0', error: { code: -32000, message: 'Forbidden: Host not allowed: Invalid Host: evil.example.com' } }, 'JSON-RPC error with no id')
  t.equal(evilHost.sessionId, undefined)

  const evilOrigin = await postWith(port, { host: `localhost:${port}`, origin: 'http://evil.example.com' })
  t.equal(evilOrigin.status, 403)
  t.match(JSON.parse(evilOrigin.body), { error: { message: /Origin not allowed/ } })
  t.notOk('id' in (JSON.parse(evilOrigin.body) as object), 'no id member')

  t.equal((await postWith(port, { host: `localhost:${port}`, origin: 'null' })).status, 403, 'the opaque null origin is refused')
  t.equal(upstream.received.length, before, 'refused requests never reach the upstream')

  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
    const ok = await postWith(port, { host, origin: `http://${host}` })
    t.equal(ok.status, 200, `${host} accepted`)
    t.ok(ok.sessionId !== undefined)
  }
  t.equal((await postWith(port, { host: `127.0.0.1:${port}` })).status, 200, 'no Origin (a non-browser client) passes')
})

t.test('configured lists replace the default', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { security: { allowedOrigins: ['app.example.com'], allowedHosts: ['gw.example.com', '127.0.0.1'] }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const port = Number(new URL(gateway.origin).port)
  t.equal((await postWith(port, { host: 'gw.example.com', origin: 'https://app.example.com' })).status, 200)
  t.equal((await postWith(port, { host: 'gw.example.com', origin: 'http://localhost:3000' })).status, 403, 'localhost is not in the configured list')
  t.equal((await postWith(port, { host: 'other.example.com' })).status, 403)
})

t.test('on a non-loopback address with no lists, no restriction applies', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { listen: { host: '0.0.0.0', port: 0 }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const port = Number(new URL(gateway.origin).port)
  t.equal((await postWith(port, { host: 'anything.example.com', origin: 'https://anything.example.com' })).status, 200)
})
