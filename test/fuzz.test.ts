import t from 'tap'
import { request as httpRequest } from 'node:http'
import { withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import { seededRandom } from './helpers/session-workload.js'

/*
 * Robustness (docs/errors.md): random methods, paths, headers and bodies, byte garbage included, with a fixed seed.
 * The gateway must never answer 5xx itself, never crash, and never serve a session to a principal
 * that does not own it.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261125)
const CASES = 3000
const ADMIN_TOKEN = 'fuzz-admin-token-0123456789abcdef'

interface RawAnswer { status: number, body: string }

async function send (port: number, method: string, path: string, headers: Record<string, string>, body: Buffer | undefined): Promise<RawAnswer> {
  return await new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(body.length) }) } }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
    })
    outgoing.setTimeout(10_000, () => outgoing.destroy(new Error('timeout')))
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

t.test(`fuzz: ${CASES} random requests (seed ${SEED})`, async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'fuzz:' },
      sessions: { binding: { header: 'x-user' }, maxPerPrincipal: 1000 },
      admin: { token: ADMIN_TOKEN },
      routes: [{ path: '/mcp', upstream: upstream.url }]
    }
  })
  const port = Number(new URL(gateway.origin).port)
  const random = seededRandom(SEED)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
  const chance = (probability: number): boolean => random() < probability
  // Header values may carry 0x20-0x7E and 0x80-0xFF; DEL (0x7F) is not sendable by any HTTP client.
  const garbage = (length: number, from = 0x20, to = 0xff): string => Array.from({ length }, () => {
    const code = from + Math.floor(random() * (to - from))
    return String.fromCharCode(code === 0x7f ? 0x7e : code)
  }).join('')
  const bytes = (length: number): Buffer => Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)))

  const principals = ['alice', 'bob', 'carol']
  const owner = new Map<string, string>()
  for (const user of principals) {
    for (let index = 0; index < 3; index++) {
      const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1), undefined, { 'x-user': user })
      owner.set(answer.headers.get('mcp-session-id') as string, user)
    }
  }
  const sessions = [...owner.keys()]
  const deleted = new Set<string>()

  function body (): Buffer | undefined {
    switch (Math.floor(random() * 10)) {
      case 0: return undefined
      case 1: return Buffer.alloc(0)
      case 2: return bytes(1 + Math.floor(random() * 300))
      case 3: return Buffer.from(garbage(1 + Math.floor(random() * 200), 0x20, 0x7f))
      case 4: return Buffer.from(JSON.stringify(pick([null, 1, 'x', [], {}, [1, 2], { jsonrpc: '2.0' }, { jsonrpc: '2.0', id: {}, method: 1 }, true])))
      case 5: return Buffer.from('['.repeat(5000) + ']'.repeat(5000))
      case 6: return Buffer.from(JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, initializeRequest(2)]))
      case 7: return Buffer.from(JSON.stringify(initializeRequest(pick([1, 'x', 0]), pick(['2025-11-25', '2025-03-26', 'garbage', '2026-07-28']))))
      case 8: return Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, method: pick(['tools/list', 'tools/call', 'resources/read', 'ping', garbage(8, 0x21, 0x7f)]), params: pick([{}, { name: 'echo', arguments: { text: garbage(20, 0x20, 0x7f) } }, { _meta: { 'io.modelcontextprotocol/protocolVersion': pick(['2026-07-28', '2099-01-01', 7]) } }]) }))
      default: return Buffer.from(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }))
    }
  }

  function headers (): { headers: Record<string, string>, session: string | undefined, user: string | undefined } {
    const result: Record<string, string> = {}
    let session: string | undefined
    let user: string | undefined
    if (chance(0.8)) result['content-type'] = pick(['application/json', 'application/json; charset=utf-8', 'text/plain', garbage(12, 0x21, 0x7f)])
    if (chance(0.7)) result.accept = pick(['application/json, text/event-stream', '*/*', garbage(10, 0x21, 0x7f)])
    if (chance(0.7)) {
      session = pick([...sessions, garbage(32, 0x21, 0x7f), garbage(200, 0x21, 0x7f), garbage(32, 0x80, 0xff), ''])
      result['mcp-session-id'] = session
    }
    if (chance(0.8)) {
      user = pick([...principals, garbage(10, 0x20, 0xff), ''])
      result['x-user'] = user
    }
    if (chance(0.3)) result['mcp-protocol-version'] = pick(['2025-11-25', '2025-03-26', '2026-07-28', 'banana', garbage(30, 0x20, 0x7f)])
    if (chance(0.2)) result['mcp-method'] = pick(['tools/list', 'tools/call', garbage(10, 0x21, 0x7f)])
    if (chance(0.1)) result['mcp-name'] = pick(['echo', '=?base64?%%?=', garbage(20, 0x21, 0x7f)])
    if (chance(0.1)) result.origin = pick(['http://localhost:3000', 'http://evil.example.com', 'null', garbage(20, 0x21, 0x7f)])
    if (chance(0.1)) result.authorization = pick([`Bearer ${ADMIN_TOKEN}`, 'Bearer x', garbage(40, 0x20, 0xff)])
    return { headers: result, session, user }
  }

  const problems: string[] = []
  const statusCounts = new Map<number, number>()
  let ownerServed = 0
  let strangerRefused = 0
  for (let index = 0; index < CASES; index++) {
    if (chance(0.35)) {
      // A well-formed session request from a random principal: served to the owner, 404 to anyone else.
      const sessionId = pick(sessions)
      const user = pick(principals)
      const answer = await send(port, 'POST', '/mcp', { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'x-user': user, 'mcp-protocol-version': '2025-11-25' },
        Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: index, method: 'tools/list' })))
      const expected = user === owner.get(sessionId) && !deleted.has(sessionId) ? 200 : 404
      if (answer.status !== expected) problems.push(`case ${index}: ${user} using the session of ${String(owner.get(sessionId))}: expected ${expected}, got ${answer.status}`)
      if (expected === 200) ownerServed++
      else strangerRefused++
      continue
    }
    const method = pick(['POST', 'POST', 'POST', 'GET', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD'])
    const path = pick(['/mcp', '/mcp', '/mcp', '/mcp?x=1', '/other', '/admin/sessions', '/admin/sessions/abc', '/mcp/..', '/%ZZ', `/${garbage(10, 0x21, 0x7e).replace(/[?#]/g, '')}`])
    const requestBody = method === 'GET' || method === 'HEAD' ? undefined : body()
    const { headers: requestHeaders, session, user } = headers()
    let answer: RawAnswer
    try {
      answer = await send(port, method, path, requestHeaders, requestBody)
    } catch (error) {
      problems.push(`case ${index}: ${method} ${path}: no answer (${(error as Error).message})`)
      continue
    }
    statusCounts.set(answer.status, (statusCounts.get(answer.status) ?? 0) + 1)
    if (answer.status >= 500) problems.push(`case ${index}: ${method} ${path} got ${answer.status}: ${answer.body.slice(0, 200)}`)
    const target = session === undefined ? undefined : owner.get(session)
    if (target !== undefined && user !== undefined && user !== target && answer.status >= 200 && answer.status < 300 && path.startsWith('/mcp') && method !== 'OPTIONS') {
      problems.push(`case ${index}: ${method} ${path} served ${user} the session of ${target} (${answer.status})`)
    }
    if (target !== undefined && user === target && method === 'DELETE' && answer.status === 204) deleted.add(session as string)
  }

  t.same(problems, [], `no 5xx, no crash, no session served to the wrong principal; statuses: ${JSON.stringify(Object.fromEntries([...statusCounts].sort()))}`)
  t.ok(ownerServed > 100 && strangerRefused > 200, `owners served ${ownerServed} times, strangers refused ${strangerRefused} times`)
  t.equal((await fetch(`${gateway.origin}/healthz`)).status, 200, 'still serving')
  for (const [sessionId, user] of owner) {
    const expected = deleted.has(sessionId) ? 404 : 200
    t.equal((await post(`${gateway.origin}/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, sessionId, { 'x-user': user })).status, expected, 'sessions intact for their owners')
  }
})
