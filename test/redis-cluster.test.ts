import t from 'tap'
import { Redis } from 'ioredis'
import { freePort } from './helpers/redis-server.js'
import { startTestCluster } from './helpers/redis-topologies.js'
import { startGatewayProcess } from './helpers/gateway-process.js'
import { withUpstream } from './helpers/fixtures.js'
import { post } from './helpers/mcp-http.js'
import { runSessionWorkload } from './helpers/session-workload.js'

/*
 * Scale-out on Redis Cluster (docs/scaling.md): a real 3-master Redis Cluster, three gateway processes, a randomized concurrent mix of
 * create / use / delete spread over them: zero wrong answers, and sessions on every master.
 */

t.test('three gateway processes on a 3-master cluster answer every request right', async (t) => {
  const cluster = await startTestCluster(3)
  t.teardown(() => cluster.close())
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const config = { redis: { cluster: { nodes: [cluster.urls[0]] }, keyPrefix: 'mcpgw:' }, routes: [{ path: '/mcp', upstream: upstream.url }] }
  const gateways = []
  for (let index = 0; index < 3; index++) {
    const gateway = await startGatewayProcess(config, await freePort())
    t.teardown(() => gateway.close())
    gateways.push(gateway)
  }
  const origins = gateways.map((gateway) => gateway.origin)

  const result = await runSessionWorkload({ targets: () => origins, operations: 3000, concurrency: 24, seed: 4242 })
  t.same(result.wrong, [], 'zero wrong answers: no live session refused, no terminated session served')
  t.ok(result.counts.create > 300 && result.counts.use > 800 && result.counts.delete > 200 && result.counts.useDeleted > 200, `a real mix: ${JSON.stringify(result.counts)}`)

  const perMaster = await Promise.all(cluster.nodes.map(async (node) => {
    const client = new Redis({ host: '127.0.0.1', port: node.port })
    try {
      return await client.dbsize()
    } finally {
      client.disconnect()
    }
  }))
  t.ok(perMaster.every((keys) => keys > 0), `sessions spread over all masters: ${perMaster.join(', ')} keys`)
  t.equal(perMaster.reduce((sum, keys) => sum + keys, 0), result.live.length, 'one key per live session, nothing else')

  for (const sessionId of result.live.slice(0, 30)) {
    for (const origin of origins) {
      t.equal((await post(`${origin}/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, sessionId)).status, 200)
    }
  }
})
