import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import { openSession, post } from './helpers/mcp-http.js'
import { metricsText, sample } from './helpers/metrics.js'

/*
 * Instances that forget every session at once (docs/stateful-upstreams.md, "Failover"): a session
 * moves at most once per client request; a fresh upstream session answered 404 again is an error
 * (MCPGW_UPSTREAM_SESSION_LOST), not another move, and its instance is left out of placement for a
 * while. So one client request costs a small, fixed number of upstream requests, not one replay per
 * instance and attempt.
 */

interface ForgetfulInstance {
  readonly url: string
  /** Every HTTP request received. */
  readonly requests: Array<{ method: string, rpcMethod: string | undefined }>
}

/**
 * Answers initialize with a result and a session id of its own, and 404 (-32001) to everything else;
 * with `acceptsNotifications`, 202 to notifications (it forgets the session only for requests).
 */
async function withForgetfulInstance (t: Teardown, name: string, acceptsNotifications: boolean): Promise<ForgetfulInstance> {
  const requests: ForgetfulInstance['requests'] = []
  let opened = 0
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      let message: { id?: unknown, method?: string } = {}
      try {
        message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof message
      } catch {}
      requests.push({ method: request.method ?? '', rpcMethod: message.method })
      if (request.method === 'POST' && message.method === 'initialize' && request.headers['mcp-session-id'] === undefined) {
        response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': `${name}-${++opened}` })
        response.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name, version: '1' } } }))
        return
      }
      if (acceptsNotifications && request.method === 'POST' && message.method?.startsWith('notifications/') === true) {
        response.writeHead(202).end()
        return
      }
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, requests }
}

const variants = [
  // A replay's notifications/initialized answered 404: the request, initialize, notifications/initialized.
  { acceptsNotifications: false, most: 3, what: 'the request, the replay\'s initialize and notifications/initialized' },
  // The replay is accepted; the request sent again is answered 404: one more.
  { acceptsNotifications: true, most: 4, what: 'the request, the replay\'s initialize and notifications/initialized, the request again' }
]

for (const { acceptsNotifications, most, what } of variants) {
  t.test(`instances that forget sessions at once${acceptsNotifications ? ' (notifications accepted)' : ''}: at most ${most} upstream requests per client request, and a clear error`, async (t) => {
    const redis = await withRedis(t)
    const instances = [await withForgetfulInstance(t, 'a', acceptsNotifications), await withForgetfulInstance(t, 'b', acceptsNotifications), await withForgetfulInstance(t, 'c', acceptsNotifications)]
    const gateway = await withGateway(t, {
      config: {
        redis: { url: redis.url, keyPrefix: 'forgetful:' },
        routes: [{ path: '/mcp', upstream: instances.map((instance) => instance.url), upstreamSessions: true, balance: 'roundRobin' }]
      }
    })
    const url = `${gateway.origin}/mcp`
    const upstreamRequests = (): number => instances.reduce((sum, instance) => sum + instance.requests.length, 0)
    const sessionId = await openSession(url)
    t.equal(upstreamRequests(), 1, 'initialize: one upstream request')

    const costs: number[] = []
    for (let index = 0; index < 10; index++) {
      const before = upstreamRequests()
      const answer = await post(url, { jsonrpc: '2.0', id: index, method: 'tools/list' }, sessionId, { 'mcp-protocol-version': '2025-11-25' })
      costs.push(upstreamRequests() - before)
      t.equal(answer.status, 502, `request ${index}: 502`)
      t.match(JSON.parse(answer.text), { id: index, error: { code: -32603, message: /forgot the session the gateway had just opened/ } }, `request ${index}: MCPGW_UPSTREAM_SESSION_LOST`)
    }
    t.ok(costs.every((cost) => cost <= most), `at most ${most} upstream requests per client request (${what}): ${costs.join(', ')}`)
    t.ok(costs.slice(3).some((cost) => cost === 1), `once every instance is left out, a request costs one upstream request: ${costs.join(', ')}`)
    const replays = instances.reduce((sum, instance) => sum + instance.requests.filter((request) => request.rpcMethod === 'initialize').length, 0) - 1
    t.ok(replays >= 1 && replays <= 10, `at most one new upstream session per client request (${replays})`)
    t.equal(instances.reduce((sum, instance) => sum + instance.requests.filter((request) => request.method === 'DELETE').length, 0), 0, 'nothing to end: the instance said it does not know the session')

    const metrics = await metricsText(gateway.origin)
    t.equal(sample(metrics, 'mcpgw_upstream_errors_total', { route: '/mcp', kind: 'session_lost' }), 10, 'counted once per client request')
    const logged = gateway.logs.filter((line) => line.msg === 'upstream instance ejected' && String(line.reason).includes('forgot'))
    t.ok(logged.length >= 1 && logged.length <= replays, `the cause logged once per instance left out, not per attempt (${logged.length} lines, ${replays} replays)`)
  })
}
