import t from 'tap'
import { discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/client/auth.js'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { withGateway, withUpstream, type Teardown } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import { freePort } from './helpers/redis-server.js'

/*
 * OAuth clients discover the authorization server of the URL they connect to (MCP 2025-06-18 and
 * later, Basic › Authorization; RFC 9728) — through the gateway, that URL is the gateway's route,
 * never the upstream's internal one. Checked with the official SDK v1 client's own discovery.
 */

const SECRET = 'a-32-byte-long-secret-for-hs256!'
const AUTHORIZATION_SERVER = 'https://auth.example'

interface ProtectedUpstream {
  readonly url: string
  readonly authorizations: Array<string | undefined>
}

/** An MCP upstream that is itself an OAuth protected resource: every POST is 401 without a token. */
async function withProtectedUpstream (t: Teardown, documents: Record<string, unknown>): Promise<ProtectedUpstream> {
  const authorizations: Array<string | undefined> = []
  let internal = ''
  const server = createServer((request, response) => {
    const document = documents[request.url ?? '']
    if (request.method === 'GET' && document !== undefined) {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(document))
      return
    }
    request.resume()
    request.on('end', () => {
      authorizations.push((request.headers as IncomingHttpHeaders).authorization)
      response.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer resource_metadata="${internal}/.well-known/oauth-protected-resource/mcp", scope="tools"`
      }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Unauthorized"}}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => await new Promise((resolve) => server.close(resolve)))
  internal = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url: `${internal}/mcp`, authorizations }
}

const internalDocument = { resource: 'http://mcp-internal:3000/mcp', authorization_servers: [AUTHORIZATION_SERVER], scopes_supported: ['tools'] }

t.test('the gateway as the protected resource (JWT binding): discovery finds the issuer, for the gateway URL', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { sessions: { binding: { jwt: { secret: SECRET, issuer: AUTHORIZATION_SERVER, scopesSupported: ['mcp'] } } }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`
  const metadata = await discoverOAuthProtectedResourceMetadata(url)
  t.equal(metadata.resource, url, 'resource is the URL the client uses')
  t.same(metadata.authorization_servers, [AUTHORIZATION_SERVER])
  t.same(metadata.scopes_supported, ['mcp'])
  t.same(metadata.bearer_methods_supported, ['header'])
})

t.test('every 401 names the metadata, with error="invalid_token" when a token was refused', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { sessions: { binding: { jwt: { secret: SECRET, issuer: AUTHORIZATION_SERVER } } }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const metadataUrl = `${gateway.origin}/.well-known/oauth-protected-resource/mcp`
  const without = await post(`${gateway.origin}/mcp`, initializeRequest())
  t.equal(without.status, 401)
  t.equal(without.headers.get('www-authenticate'), `Bearer resource_metadata="${metadataUrl}", realm="mcp-session-gateway"`)
  const refused = await post(`${gateway.origin}/mcp`, initializeRequest(), undefined, { authorization: 'Bearer not.a.token' })
  t.match(refused.headers.get('www-authenticate'), new RegExp(`^Bearer resource_metadata="${metadataUrl.replace(/[.]/g, '\\.')}", .*error="invalid_token"`))
})

t.test('an OAuth-protected upstream: its document, path-aware, with resource rewritten to the gateway URL', async (t) => {
  const upstream = await withProtectedUpstream(t, { '/.well-known/oauth-protected-resource/mcp': internalDocument })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/tools', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const url = `${gateway.origin}/tools`
  const metadata = await discoverOAuthProtectedResourceMetadata(url)
  t.equal(metadata.resource, url)
  t.same(metadata.authorization_servers, [AUTHORIZATION_SERVER])
  t.same(metadata.scopes_supported, ['tools'], 'the rest of the document as the upstream wrote it')
})

t.test('an OAuth-protected upstream with only the root document', async (t) => {
  const upstream = await withProtectedUpstream(t, { '/.well-known/oauth-protected-resource': internalDocument })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const metadata = await discoverOAuthProtectedResourceMetadata(`${gateway.origin}/mcp`)
  t.equal(metadata.resource, `${gateway.origin}/mcp`)
})

t.test('the upstream\'s 401 points at the gateway, and Authorization reaches the upstream untouched', async (t) => {
  const upstream = await withProtectedUpstream(t, { '/.well-known/oauth-protected-resource/mcp': internalDocument })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(), undefined, { authorization: 'Bearer opaque-token-for-the-upstream' })
  t.equal(answer.status, 401)
  t.equal(answer.headers.get('www-authenticate'), `Bearer resource_metadata="${gateway.origin}/.well-known/oauth-protected-resource/mcp", scope="tools"`)
  t.equal(answer.headers.get('mcp-session-id'), null, 'nothing minted')
  t.same(upstream.authorizations, ['Bearer opaque-token-for-the-upstream'])
})

t.test('an upstream without metadata: 404', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const answer = await fetch(`${gateway.origin}/.well-known/oauth-protected-resource/mcp`)
  t.equal(answer.status, 404)
})

t.test('listen.publicUrl names the resource; forwarded headers count only behind trustProxy', async (t) => {
  const upstream = await withUpstream(t)
  const jwt = { secret: SECRET, issuer: AUTHORIZATION_SERVER }
  const configured = await withGateway(t, { config: { listen: { host: '127.0.0.1', port: 0, publicUrl: 'https://mcp.example.com' }, sessions: { binding: { jwt } }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const fromConfig = await (await fetch(`${configured.origin}/.well-known/oauth-protected-resource/mcp`)).json() as { resource: string }
  t.equal(fromConfig.resource, 'https://mcp.example.com/mcp')
  const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'edge.example.com' }
  const untrusted = await withGateway(t, { config: { sessions: { binding: { jwt } }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const ignored = await (await fetch(`${untrusted.origin}/.well-known/oauth-protected-resource/mcp`, { headers: forwarded })).json() as { resource: string }
  t.equal(ignored.resource, `${untrusted.origin}/mcp`, 'X-Forwarded-* ignored without trustProxy')
  const trusted = await withGateway(t, { config: { listen: { host: '127.0.0.1', port: 0, trustProxy: true }, security: { allowedHosts: ['127.0.0.1', 'edge.example.com'] }, sessions: { binding: { jwt } }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const believed = await (await fetch(`${trusted.origin}/.well-known/oauth-protected-resource/mcp`, { headers: forwarded })).json() as { resource: string }
  t.equal(believed.resource, 'https://edge.example.com/mcp', 'X-Forwarded-Proto/Host behind trustProxy')
})

t.test('a route ending in "/" has its metadata where clients look: without the trailing slash', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { sessions: { binding: { jwt: { secret: SECRET, issuer: AUTHORIZATION_SERVER } } }, routes: [{ path: '/', upstream: upstream.url }, { path: '/tools/', upstream: upstream.url }] } })
  t.equal((await discoverOAuthProtectedResourceMetadata(`${gateway.origin}/`)).resource, `${gateway.origin}/`, 'route / at the bare well-known path')
  t.equal((await discoverOAuthProtectedResourceMetadata(`${gateway.origin}/tools/`)).resource, `${gateway.origin}/tools/`)
})

t.test('several upstream challenges are all rewritten; concurrent metadata requests share one upstream fetch', async (t) => {
  let fetches = 0
  let internal = ''
  const server = createServer((request, response) => {
    if (request.method === 'GET') {
      fetches++
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(internalDocument))
      return
    }
    request.resume()
    request.on('end', () => {
      response.setHeader('www-authenticate', [`Bearer resource_metadata="${internal}/.well-known/oauth-protected-resource/mcp"`, `DPoP resource_metadata="${internal}/.well-known/oauth-protected-resource/mcp"`])
      response.writeHead(401, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => await new Promise((resolve) => server.close(resolve)))
  internal = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: `${internal}/mcp`, upstreamEra: 'legacy' }] } })
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest())
  const challenges = answer.headers.get('www-authenticate') ?? ''
  t.notMatch(challenges, internal, 'no challenge names the upstream')
  t.equal(challenges.split(`resource_metadata="${gateway.origin}/.well-known/oauth-protected-resource/mcp"`).length - 1, 2, 'both challenges name the gateway')
  const documents = await Promise.all(Array.from({ length: 10 }, async () => await (await fetch(`${gateway.origin}/.well-known/oauth-protected-resource/mcp`)).json() as { resource: string }))
  t.ok(documents.every((document) => document.resource === `${gateway.origin}/mcp`))
  t.equal(fetches, 1, 'one upstream fetch for ten concurrent requests')
})

t.test('a forwarded host that is not a host name is refused, never reflected', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { listen: { host: '127.0.0.1', port: 0, trustProxy: true }, security: { allowedHosts: ['127.0.0.1'] }, sessions: { binding: { jwt: { secret: SECRET, issuer: AUTHORIZATION_SERVER } } }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const answer = await fetch(`${gateway.origin}/.well-known/oauth-protected-resource/mcp`, { headers: { 'x-forwarded-host': 'a.example", error="injected' } })
  t.equal(answer.status, 400)
})

t.test('a stateful route serves its upstream\'s metadata while one instance is healthy, in list order', async (t) => {
  const stopped = `http://127.0.0.1:${await freePort()}/mcp`
  const alive = await withProtectedUpstream(t, { '/.well-known/oauth-protected-resource/mcp': internalDocument })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: [stopped, alive.url], upstreamSessions: true }] } })
  const metadata = await discoverOAuthProtectedResourceMetadata(`${gateway.origin}/mcp`)
  t.equal(metadata.resource, `${gateway.origin}/mcp`, 'from the second instance, the first being down')
  t.same(metadata.authorization_servers, [AUTHORIZATION_SERVER])
})
