import t from 'tap'
import { eventually } from './helpers/eventually.js'
import { freePort } from './helpers/redis-server.js'
import { startGatewayProcess, type GatewayProcess } from './helpers/gateway-process.js'
import { withRedis, withUpstream } from './helpers/fixtures.js'
import { post } from './helpers/mcp-http.js'
import { runSessionWorkload } from './helpers/session-workload.js'

/*
 * Gateway replicas restarted one by one under traffic (a rolling deploy, docs/operating.md). Like a
 * load balancer, the client takes a replica out of rotation, lets requests already sent to it finish
 * (the connection draining every LB does: without it a request written onto a keep-alive socket at
 * the instant the server closes it is reset, on any HTTP server), stops it with SIGTERM and puts it
 * back once it listens again. No session is lost and no request is answered wrongly.
 */

t.test('a rolling restart of three replicas under traffic', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const config = { redis: { url: redis.url }, routes: [{ path: '/mcp', upstream: upstream.url }] }
  const replicas: GatewayProcess[] = []
  for (let index = 0; index < 3; index++) {
    const replica = await startGatewayProcess(config, await freePort())
    t.teardown(() => replica.close())
    replicas.push(replica)
  }
  const inRotation = new Set(replicas.map((replica) => replica.origin))

  const before = await runSessionWorkload({ targets: () => [...inRotation], operations: 300, concurrency: 10, seed: 7 })
  t.same(before.wrong, [])

  const inFlight = new Map<string, number>()
  const traffic = runSessionWorkload({ targets: () => [...inRotation], operations: 2500, concurrency: 12, seed: 99, inFlight })
  for (const replica of replicas) {
    inRotation.delete(replica.origin)
    await eventually(() => (inFlight.get(replica.origin) ?? 0) === 0, { timeout: 10_000, interval: 5, description: `the requests in flight to ${replica.origin} to finish` })
    t.equal(await replica.stop(), 0, `${replica.origin} exits 0 on SIGTERM`)
    await replica.start()
    inRotation.add(replica.origin)
  }
  const during = await traffic
  t.same(during.wrong, [], 'no request answered wrongly during the rolling restart')

  for (const sessionId of [...before.live, ...during.live]) {
    t.equal((await post(`${replicas[0]?.origin ?? ''}/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, sessionId)).status, 200, 'no session lost')
  }
})
