import t from 'tap'
import type { Test } from 'tap'
import { hashPrincipal } from '../src/security/principal.js'
import { redisFailureSummary } from '../src/sessions/redis-client.js'
import { SESSION_ID_SOURCE } from '../src/sessions/session-id.js'
import { withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import type { TestGateway } from './helpers/gateway.js'
import { initializeRequest, post, request } from './helpers/mcp-http.js'
import { freePort, type TestRedis } from './helpers/redis-server.js'

/*
 * Redis error replies in the logs (docs/operating.md, "Logs"): ioredis attaches the failed command
 * and its arguments (session keys, principal hashes) to its errors. What the gateway logs of a
 * Redis failure is its message and code only. A real redis-server turned read-only (as an old
 * master after a failover) and, separately, out of memory; requests through a real gateway.
 */

const toolsList = { jsonrpc: '2.0', id: 2, method: 'tools/list' }
const USER = 'alice'

interface Setup {
  readonly redis: TestRedis
  readonly gateway: TestGateway
  readonly url: string
  readonly sessionId: string
}

async function sessionOnRedis (t: Test): Promise<Setup> {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  // The rate limit puts the principal hash in a key of its own, written before anything else.
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'logs:', commandTimeout: '1s' },
      sessions: { binding: { header: 'x-user' } },
      limits: { initializePerMinute: 1000 },
      routes: [{ path: '/mcp', upstream: upstream.url }]
    }
  })
  const url = `${gateway.origin}/mcp`
  const answer = await post(url, initializeRequest(1), undefined, { 'x-user': USER })
  t.equal(answer.status, 200)
  return { redis, gateway, url, sessionId: answer.headers.get('mcp-session-id') as string }
}

/** Anything shaped like a session id (src/sessions/session-id.ts), whichever session it is. */
const ANY_SESSION_ID = new RegExp(SESSION_ID_SOURCE)

function assertClean (t: Test, { gateway, sessionId }: Setup, code: string): void {
  const failures = gateway.logs.filter((line) => line.msg === 'request failed')
  t.ok(failures.some((line) => (line.err as { code?: string } | undefined)?.code === code), `a failure is logged with the Redis code ${code}`)
  const everything = gateway.rawLogs.join('\n')
  t.notMatch(everything, ANY_SESSION_ID, 'no session id anywhere in the log, not even of a session that was never handed out')
  t.notMatch(everything, sessionId, 'no session id anywhere in the log')
  t.notMatch(everything, sessionId.slice(0, 16), 'not even half of one')
  t.notMatch(everything, hashPrincipal('header', USER), 'no principal hash')
  t.notMatch(everything, 'logs:session', 'no session key')
  t.notMatch(everything, '"args"', 'no command arguments')
}

t.test('READONLY (an old master after a failover): logged with its code, without keys', async (t) => {
  const setup = await sessionOnRedis(t)
  const admin = setup.redis.client()
  // A replica of nobody: it keeps its data and refuses writes (replica-read-only).
  await admin.replicaof('127.0.0.1', await freePort())
  t.teardown(async () => { await admin.replicaof('NO', 'ONE').catch(() => undefined) })
  const { url, sessionId } = setup
  t.equal((await post(url, toolsList, sessionId, { 'x-user': USER })).status, 503, 'a request on the session: 503')
  t.equal((await request(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, 'x-user': USER } })).status, 503, 'DELETE: 503')
  t.equal((await post(url, initializeRequest(3), undefined, { 'x-user': USER })).status, 503, 'initialize: 503')
  assertClean(t, setup, 'READONLY')
})

t.test('OOM (maxmemory with noeviction): logged with its code, without keys', async (t) => {
  const setup = await sessionOnRedis(t)
  const admin = setup.redis.client()
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  await admin.config('SET', 'maxmemory', '1')
  t.teardown(async () => { await admin.config('SET', 'maxmemory', '0').catch(() => undefined) })
  // Only commands that need memory are refused: the rate limit's counter, a new session.
  t.equal((await post(setup.url, initializeRequest(3), undefined, { 'x-user': USER })).status, 503, 'initialize: 503')
  assertClean(t, setup, 'OOM')
})

t.test('redisFailureSummary keeps message and code, drops the command and any argument quoted', async (t) => {
  const error = Object.assign(new Error('ERR something about mcpgw:session:{abcdefgh}:secret-id\nsecond line'), {
    command: { name: 'evalsha', args: ['sha', '2', 'mcpgw:session:{abcdefgh}:secret-id', 'mcpgw:principal:{abcdefgh}'] }
  })
  const summary = redisFailureSummary(error)
  t.equal(summary.message, 'ERR something about [redacted]')
  t.equal(summary.code, 'ERR')
  t.notOk('command' in summary)
  t.equal(redisFailureSummary(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })).code, 'ECONNREFUSED')
  t.equal(redisFailureSummary('not an error').message, 'Redis failure')
  t.equal(redisFailureSummary(new Error('Command timed out')).code, undefined, 'no code when there is none')
})
