import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { eventually } from './helpers/eventually.js'
import { startTestSentinel } from './helpers/redis-topologies.js'
import { withGateway, withUpstream } from './helpers/fixtures.js'
import { initializeRequest, openSession, post, request } from './helpers/mcp-http.js'

/*
 * Sentinel (docs/scaling.md). Kill the master during traffic: the gateway answers 503 (never an unchecked
 * pass) while no master is reachable, recovers on the promoted replica without a restart, and
 * sessions created with waitForReplicas: 1 before the failover still work after it.
 */

const toolsList = { jsonrpc: '2.0', id: 3, method: 'tools/list' }

t.test('failover under traffic', async (t) => {
  const sentinel = await startTestSentinel()
  t.teardown(() => sentinel.close())
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const gateway = await withGateway(t, {
    config: {
      redis: { sentinel: { name: sentinel.name, sentinels: [`127.0.0.1:${sentinel.sentinelPort}`] }, waitForReplicas: 1, waitTimeout: '500ms', commandTimeout: '1s', connectTimeout: '1s' },
      routes: [{ path: '/mcp', upstream: upstream.url }]
    }
  })
  const url = `${gateway.origin}/mcp`
  const durable = await Promise.all(Array.from({ length: 20 }, async () => await openSession(url)))
  const ended = await openSession(url)
  t.equal((await request(url, { method: 'DELETE', headers: { 'mcp-session-id': ended } })).status, 204)

  const answers = { ok: 0, unavailable: 0, wrong: [] as string[] }
  let running = true
  const traffic = (async () => {
    let turn = 0
    while (running) {
      turn++
      const liveAnswer = await post(url, toolsList, durable[turn % durable.length]).catch((error: Error) => ({ status: -1, text: error.message }))
      if (liveAnswer.status === 200) answers.ok++
      else if (liveAnswer.status === 503) answers.unavailable++
      else answers.wrong.push(`live session: ${liveAnswer.status} ${liveAnswer.text}`)
      // A terminated session must never be served, even while Redis is away: 404 or 503, never 200.
      const endedAnswer = await post(url, toolsList, ended).catch((error: Error) => ({ status: -1, text: error.message }))
      if (endedAnswer.status !== 404 && endedAnswer.status !== 503) answers.wrong.push(`terminated session: ${endedAnswer.status}`)
      // A fixed sleep on purpose: it paces the traffic, so that two cores still have room for Redis,
      // the sentinel's election and the gateway.
      await sleep(10)
    }
  })()
  // Stops the traffic even when an assertion below throws.
  t.teardown(async () => { running = false; await traffic })

  await eventually(() => answers.ok >= 5, { timeout: 10_000, description: 'traffic to be answered before the failover' })
  const oldMaster = sentinel.master.port
  await sentinel.master.stop()
  // Generous: under a loaded CI machine election and reconnection can take many seconds.
  const deadline = Date.now() + 60_000
  await eventually(async () => await sentinel.currentMasterPort() !== oldMaster, { timeout: deadline - Date.now(), interval: 100, description: 'the sentinel to elect a new master' })
  t.equal(await sentinel.currentMasterPort(), sentinel.replica.port, 'the sentinel promoted the replica')
  let lastStatus = 0
  await eventually(async () => (lastStatus = (await post(url, toolsList, durable[0])).status) === 200, { timeout: deadline - Date.now(), interval: 100, description: 'the gateway to answer on the promoted replica' }).catch(() => false)
  t.equal(lastStatus, 200, `the gateway recovered on the promoted replica (last answer ${lastStatus})`)
  // Traffic keeps running on the promoted replica before it stops.
  const okAtRecovery = answers.ok
  await eventually(() => answers.ok >= okAtRecovery + 5, { timeout: 10_000, description: 'traffic to be answered after the failover' })
  running = false
  await traffic

  t.same(answers.wrong, [], 'every answer was right or 503')
  t.ok(answers.unavailable > 0, `503 while no master was reachable (${answers.unavailable} times)`)
  t.ok(answers.ok > 0)
  for (const sessionId of durable) t.equal((await post(url, toolsList, sessionId)).status, 200, 'created with waitForReplicas: 1, alive after the failover')

  // With no replica left, a new session cannot be made durable: refused, never handed out.
  const undurable = await post(url, initializeRequest(8))
  t.equal(undurable.status, 503, 'no replica to acknowledge: initialize refused')
  t.equal(undurable.headers.get('mcp-session-id'), null)
  // The old master returns; the sentinel turns it into a replica of the new master.
  await sentinel.master.start()
  let fresh = await post(url, initializeRequest(9))
  await eventually(async () => {
    if (fresh.status !== 200) fresh = await post(url, initializeRequest(9))
    return fresh.status === 200
  }, { timeout: deadline + 30_000 - Date.now(), interval: 200, description: 'an initialize acknowledged by the returned replica' }).catch(() => false)
  t.equal(fresh.status, 200, 'new sessions once a replica acknowledges again')
  t.ok(fresh.headers.get('mcp-session-id') !== null)
  t.equal((await request(`${gateway.origin}/readyz`, { method: 'GET' })).status, 200)
})
