import t from 'tap'
import type { Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { CompactSign, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose'
import { pino } from 'pino'
import { validateConfig, type SessionBinding } from '../src/config/validate-config.js'
import { createPrincipalResolver } from '../src/security/principal.js'
import { sessionIdCreatedAt } from '../src/sessions/session-id.js'
import { eventually } from './helpers/eventually.js'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream, type Teardown } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, post, request } from './helpers/mcp-http.js'
import type { TestRedis } from './helpers/redis-server.js'

/* Sessions bound to the caller's identity; JWTs verified on every request (docs/configuration.md, sessions.binding). */

const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
const ISSUER = 'https://issuer.test'
const AUDIENCE = 'mcp-gateway'

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

async function openAs (url: string, authorization: string | undefined): Promise<string> {
  const answer = await post(url, initializeRequest(1), undefined, authorization === undefined ? {} : { authorization })
  const sessionId = answer.headers.get('mcp-session-id')
  if (answer.status !== 200 || sessionId === null) throw new Error(`initialize failed: ${answer.status} ${answer.text}`)
  return sessionId
}

for (const kind of storeKinds) {
  t.test(`${kind} store: header binding — another token, or none, sees nothing`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'json' })
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis, `bind-${kind}:`), sessions: { binding: { header: 'authorization' } }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
    const url = `${gateway.origin}/mcp`
    const alice = 'Bearer alice-token'
    const sessionId = await openAs(url, alice)

    t.equal((await post(url, toolsList, sessionId, { authorization: alice })).status, 200, 'the owner')
    const stolen = await post(url, toolsList, sessionId, { authorization: 'Bearer mallory-token' })
    t.equal(stolen.status, 404, 'another token: 404')
    t.same(JSON.parse(stolen.text), { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }, 'exactly as if the id did not exist')
    t.equal((await post(url, toolsList, sessionId)).status, 404, 'no token: 404')
    t.equal((await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, authorization: 'Bearer mallory-token' } })).status, 404, 'DELETE by another: 404')
    t.equal((await post(url, toolsList, sessionId, { authorization: alice })).status, 200, 'and the session is untouched')
    t.equal((await post(url, initializeRequest(4), sessionId, { authorization: 'Bearer mallory-token' })).status, 404, 'initialize with a stolen id: 404, not "already initialized"')
    t.equal((await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, authorization: alice } })).status, 204)

    const anonymous = await openAs(url, undefined)
    t.equal((await post(url, toolsList, anonymous)).status, 200, 'a session made without the header is bound to "no header"')
    t.equal((await post(url, toolsList, anonymous, { authorization: alice })).status, 404)
  })
}

t.test('maxPerPrincipal over HTTP: 429, nothing minted, an ended session frees its place', async (t) => {
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, { config: { ...redisSection('redis', redis, 'limit:'), sessions: { binding: { header: 'x-api-key' }, maxPerPrincipal: 2 }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`
  const first = await openAs(url, undefined).catch(() => '')
  t.ok(first.length > 0)
  const key = { 'x-api-key': 'team-a' }
  const one = (await post(url, initializeRequest(1), undefined, key)).headers.get('mcp-session-id') as string
  await post(url, initializeRequest(2), undefined, key)
  const refused = await post(url, initializeRequest(3), undefined, key)
  t.equal(refused.status, 429)
  t.equal(refused.headers.get('mcp-session-id'), null, 'nothing minted')
  t.match(JSON.parse(refused.text), { id: 3, error: { message: /maxPerPrincipal/ } })
  t.equal((await post(url, initializeRequest(4), undefined, { 'x-api-key': 'team-b' })).status, 200, 'other principals are not affected')
  t.equal((await request(url, { method: 'DELETE', headers: { 'mcp-session-id': one, ...key } })).status, 204)
  t.equal((await post(url, initializeRequest(5), undefined, key)).status, 200, 'a terminated session freed its place')
})

for (const kind of storeKinds) {
  t.test(`${kind} store: maxPerPrincipalPolicy evictOldest ends the oldest session, counts it and tells every replica`, async (t) => {
    const upstream = await withUpstream(t, { responseMode: 'json' })
    const keyPrefix = `evict-${kind}:`
    const gateway = await withGateway(t, {
      config: { ...redisSection(kind, redis, keyPrefix), sessions: { binding: { header: 'x-api-key' }, maxPerPrincipal: 2, maxPerPrincipalPolicy: 'evictOldest' }, routes: [{ path: '/mcp', upstream: upstream.url }] }
    })
    const told: string[] = []
    // What every replica hears: the relay's channel for all replicas (through Redis for a shared store).
    if (kind === 'redis') {
      const subscriber = redis.client()
      await subscriber.subscribe(`${keyPrefix}bridge:all`)
      subscriber.on('message', (_channel: string, message: string) => { told.push(message) })
    } else {
      await gateway.app.sessionStore.subscribe('all', (message) => { told.push(message) })
    }
    const url = `${gateway.origin}/mcp`
    const key = { 'x-api-key': 'team-a' }
    const open = async (id: number): Promise<string> => {
      const answer = await post(url, initializeRequest(id), undefined, key)
      t.equal(answer.status, 200, `initialize ${id}: 200`)
      return answer.headers.get('mcp-session-id') as string
    }
    const oldest = await open(1)
    // Creation times are store-clock milliseconds: the next session must be younger.
    await eventually(() => Date.now() > sessionIdCreatedAt(oldest) + 1, { timeout: 1_000, description: 'a later millisecond' })
    const second = await open(2)
    const third = await open(3)
    t.equal((await post(url, toolsList, oldest, key)).status, 404, 'the oldest session\'s client gets 404')
    t.equal((await post(url, toolsList, second, key)).status, 200)
    t.equal((await post(url, toolsList, third, key)).status, 200)
    await eventually(() => told.some((message) => message.includes(oldest)), { timeout: 5_000, description: 'the eviction to be told to every replica' })
    t.same(JSON.parse(told.find((message) => message.includes(oldest)) as string), { kind: 'session changed', session: oldest })
    const metrics = (await request(`${gateway.origin}/metrics`, { method: 'GET' })).text
    t.match(metrics, /mcpgw_sessions_terminated_total\{reason="evicted"\} 1\b/, 'counted as evicted')
  })
}

interface Issuer {
  readonly jwksUrl: string
  readonly publicKeyPem: string
  /** `expiresIn: null`: a token without `exp`. */
  sign (claims: Record<string, unknown>, options?: { expiresIn?: string | null, issuer?: string, audience?: string, key?: CryptoKey }): Promise<string>
  /**
   * A token whose claims are `claimsJson` as written (members of an object, without braces), with
   * iss, aud, iat and exp added: for numbers a JavaScript value cannot hold, as another issuer writes them.
   */
  signJsonText (claimsJson: string): Promise<string>
  readonly otherKey: CryptoKey
}

/** Our own signing keys and a JWKS endpoint on port 0. */
async function withIssuer (t: Teardown): Promise<Issuer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  const other = await generateKeyPair('RS256')
  const jwk = { ...await exportJWK(publicKey), kid: 'test-key', alg: 'RS256', use: 'sig' }
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ keys: [jwk] }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return {
    jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    publicKeyPem: await exportSPKI(publicKey),
    otherKey: other.privateKey,
    sign: async (claims, options = {}) => {
      const token = new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
        .setIssuedAt()
        .setIssuer(options.issuer ?? ISSUER)
        .setAudience(options.audience ?? AUDIENCE)
      if (options.expiresIn !== null) token.setExpirationTime(options.expiresIn ?? '5m')
      return await token.sign(options.key ?? privateKey)
    },
    signJsonText: async (claimsJson) => {
      const now = Math.floor(Date.now() / 1000)
      const payload = `{${claimsJson},"iss":${JSON.stringify(ISSUER)},"aud":${JSON.stringify(AUDIENCE)},"iat":${now},"exp":${now + 300}}`
      return await new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: 'RS256', kid: 'test-key', typ: 'JWT' }).sign(privateKey)
    }
  }
}

/** A gateway bound to JWTs from a fresh issuer, and a session opened by alice. */
async function aliceSession (t: Test, keySource: 'jwksUrl' | 'publicKey', keyPrefix: string): Promise<{ issuer: Issuer, gateway: TestGateway, url: string, aliceToken: string, sessionId: string }> {
  const issuer = await withIssuer(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const jwt = { issuer: ISSUER, audience: AUDIENCE, ...(keySource === 'jwksUrl' ? { jwksUrl: issuer.jwksUrl } : { publicKey: issuer.publicKeyPem }) }
  const gateway = await withGateway(t, { config: { ...redisSection('redis', redis, keyPrefix), sessions: { binding: { jwt } }, routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const url = `${gateway.origin}/mcp`
  const aliceToken = await issuer.sign({ sub: 'alice', jti: 'first' })
  const sessionId = await openAs(url, `Bearer ${aliceToken}`)
  return { issuer, gateway, url, aliceToken, sessionId }
}

for (const keySource of ['jwksUrl', 'publicKey'] as const) {
  t.test(`JWT binding (${keySource}): a refreshed token keeps the session`, async (t) => {
    const { issuer, gateway, url, aliceToken, sessionId } = await aliceSession(t, keySource, `jwt-refresh-${keySource}:`)
    t.equal((await post(url, toolsList, sessionId, { authorization: `Bearer ${aliceToken}` })).status, 200)
    const refreshed = await issuer.sign({ sub: 'alice', jti: 'refreshed' }, { expiresIn: '10m' })
    t.not(refreshed, aliceToken)
    t.equal((await post(url, toolsList, sessionId, { authorization: `Bearer ${refreshed}` })).status, 200, 'a refreshed token for the same subject keeps the session')
    t.notMatch(gateway.rawLogs.join('\n'), refreshed.slice(-20), 'tokens are never logged')
  })

  t.test(`JWT binding (${keySource}): verified on every request`, async (t) => {
    const { issuer, gateway, url, aliceToken, sessionId } = await aliceSession(t, keySource, `jwt-${keySource}:`)
    t.equal((await post(url, toolsList, sessionId, { authorization: `Bearer ${aliceToken}` })).status, 200)
    t.equal((await post(url, toolsList, sessionId, { authorization: `Bearer ${await issuer.sign({ sub: 'bob' })}` })).status, 404, 'another subject: 404')

    const refusals: Array<[string, Record<string, string>, RegExp]> = [
      ['no token', {}, /^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp", realm="mcp-session-gateway"$/],
      ['not a bearer token', { authorization: 'Basic YWxpY2U6cHc=' }, /^Bearer resource_metadata="[^"]+", realm/],
      ['garbage', { authorization: 'Bearer not.a.jwt' }, /error="invalid_token"/],
      ['expired', { authorization: `Bearer ${await issuer.sign({ sub: 'alice' }, { expiresIn: '-1m' })}` }, /expired/],
      ['wrong issuer', { authorization: `Bearer ${await issuer.sign({ sub: 'alice' }, { issuer: 'https://evil.test' })}` }, /iss claim/],
      ['wrong audience', { authorization: `Bearer ${await issuer.sign({ sub: 'alice' }, { audience: 'someone-else' })}` }, /aud claim/],
      ['wrong signature', { authorization: `Bearer ${await issuer.sign({ sub: 'alice' }, { key: issuer.otherKey })}` }, /invalid_token/],
      ['no sub claim', { authorization: `Bearer ${await issuer.sign({ name: 'alice' })}` }, /no sub claim/],
      ['an empty sub claim', { authorization: `Bearer ${await issuer.sign({ sub: '' })}` }, /sub claim is empty/],
      ['no exp claim (requireExp by default)', { authorization: `Bearer ${await issuer.sign({ sub: 'alice' }, { expiresIn: null })}` }, /no exp claim/]
    ]
    for (const [name, headers, challenge] of refusals) {
      for (const target of [{ body: toolsList, sessionId }, { body: initializeRequest(9), sessionId: undefined }]) {
        const answer = await post(url, target.body, target.sessionId, headers)
        t.equal(answer.status, 401, `${name}: 401`)
        t.match(answer.headers.get('www-authenticate'), challenge, `${name}: WWW-Authenticate`)
        t.equal(answer.headers.get('mcp-session-id'), null)
      }
    }
    t.notMatch(gateway.rawLogs.join('\n'), aliceToken.slice(-20), 'tokens are never logged')
  })
}

t.test('JWT binding: only a JSON string names a principal (StringOrURI), so numbers never merge subjects', async (t) => {
  const { issuer, url, sessionId: aliceSessionId } = await aliceSession(t, 'publicKey', 'jwt-string-claim:')
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
  const notAString = /error="invalid_token", error_description="the token's sub claim is not a string"$/
  async function refused (name: string, token: string, sessionId: string): Promise<void> {
    for (const [what, answer] of [
      ['initialize', await post(url, initializeRequest(9), undefined, bearer(token))],
      ['a session request', await post(url, toolsList, sessionId, bearer(token))],
      ['DELETE', await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, ...bearer(token) } })]
    ] as const) {
      t.equal(answer.status, 401, `${name}, ${what}: 401`)
      t.match(answer.headers.get('www-authenticate'), notAString, `${name}, ${what}: invalid_token, not a string`)
      t.equal(answer.headers.get('mcp-session-id'), null, `${name}, ${what}: nothing minted`)
    }
  }

  // Two 64-bit subjects another issuer writes as JSON numbers: one JavaScript number once parsed.
  t.equal(JSON.parse('1234567890123456789'), JSON.parse('1234567890123456788'), 'the premise: they parse to the same number')
  const first = await issuer.signJsonText('"sub":1234567890123456789')
  const second = await issuer.signJsonText('"sub":1234567890123456788')
  await refused('a 64-bit numeric sub', first, aliceSessionId)
  await refused('the next 64-bit numeric sub', second, aliceSessionId)

  const stringSub = `Bearer ${await issuer.sign({ sub: '123' })}`
  const numericSub = await issuer.sign({ sub: 123 })
  const opened = await post(url, initializeRequest(1), undefined, { authorization: stringSub })
  t.equal(opened.status, 200, 'sub "123" (a string) opens a session')
  const stringSession = opened.headers.get('mcp-session-id') as string
  await refused('sub 123 (a number)', numericSub, stringSession)
  t.equal((await post(url, toolsList, stringSession, { authorization: stringSub })).status, 200, 'the "123" session is untouched')

  for (const [name, claimsJson] of [['a float', '"sub":1.5'], ['true', '"sub":true'], ['null', '"sub":null'], ['an object', '"sub":{"id":"alice"}'], ['an array', '"sub":["alice"]']]) {
    await refused(`sub ${name}`, await issuer.signJsonText(claimsJson as string), aliceSessionId)
  }
  t.equal((await post(url, toolsList, aliceSessionId, { authorization: `Bearer ${await issuer.sign({ sub: 'alice' })}` })).status, 200, 'alice\'s session is untouched')
})

t.test('JWT binding: a configured claim other than sub follows the same rule', async (t) => {
  const issuer = await withIssuer(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, {
    config: { sessions: { binding: { jwt: { publicKey: issuer.publicKeyPem, issuer: ISSUER, audience: AUDIENCE, claim: 'uid' } } }, routes: [{ path: '/mcp', upstream: upstream.url }] }
  })
  const url = `${gateway.origin}/mcp`
  const numeric = await post(url, initializeRequest(1), undefined, { authorization: `Bearer ${await issuer.sign({ sub: 'alice', uid: 42 })}` })
  t.equal(numeric.status, 401)
  t.match(numeric.headers.get('www-authenticate'), /error="invalid_token", error_description="the token's uid claim is not a string"/)
  t.equal((await post(url, initializeRequest(2), undefined, { authorization: `Bearer ${await issuer.sign({ sub: 'alice', uid: '42' })}` })).status, 200, 'a string uid is an identity')
})

t.test('JWT binding: a JWKS that cannot be fetched is a 503, not a 401', async (t) => {
  const issuer = await withIssuer(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, {
    config: { sessions: { binding: { jwt: { jwksUrl: 'http://127.0.0.1:1/jwks.json', issuer: ISSUER, audience: AUDIENCE } } }, routes: [{ path: '/mcp', upstream: upstream.url }] }
  })
  const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1), undefined, { authorization: `Bearer ${await issuer.sign({ sub: 'alice' })}` })
  t.equal(answer.status, 503)
  t.match(JSON.parse(answer.text), { error: { message: /jwksUrl/ } })
})

t.test('JWT binding: requireExp false accepts a token without exp', async (t) => {
  const issuer = await withIssuer(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, {
    config: { sessions: { binding: { jwt: { publicKey: issuer.publicKeyPem, issuer: ISSUER, audience: AUDIENCE, requireExp: false } } }, routes: [{ path: '/mcp', upstream: upstream.url }] }
  })
  const token = await issuer.sign({ sub: 'alice' }, { expiresIn: null })
  t.equal((await post(`${gateway.origin}/mcp`, initializeRequest(1), undefined, { authorization: `Bearer ${token}` })).status, 200)
  const expired = await issuer.sign({ sub: 'alice' }, { expiresIn: '-1m' })
  t.equal((await post(`${gateway.origin}/mcp`, initializeRequest(2), undefined, { authorization: `Bearer ${expired}` })).status, 401, 'an exp that is there is still checked')
})

t.test('JWT binding without issuer or audience: one warning when the resolver is made', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, new Writable({ write (chunk: Buffer, _encoding, callback) { lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>); callback() } }))
  const binding = (jwt: Record<string, unknown>): SessionBinding => validateConfig({ sessions: { binding: { jwt: { secret: 'x'.repeat(32), ...jwt } } }, routes: [{ path: '/mcp', upstream: 'http://u/mcp' }] }).sessions.binding
  // pino writes to a stream destination synchronously: the lines are there when the call returns.
  const warnings = (jwt: Record<string, unknown>): Array<Record<string, unknown>> => {
    lines.length = 0
    createPrincipalResolver(binding(jwt), log)
    return lines.filter((line) => line.level === 40)
  }
  t.match(warnings({}), [{ unchecked: ['sessions.binding.jwt.issuer', 'sessions.binding.jwt.audience'], msg: /issuer or audience/ }])
  t.match(warnings({ issuer: ISSUER }), [{ unchecked: ['sessions.binding.jwt.audience'] }])
  t.equal(warnings({ issuer: ISSUER }).length, 1, 'once per resolver, not per request')
  t.same(warnings({ issuer: ISSUER, audience: AUDIENCE }), [], 'none with both')
  t.doesNotThrow(() => createPrincipalResolver(binding({})), 'the logger is optional')
})
