import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { reviveWhenEnded } from '../src/sessions/redis-client.js'
import { eventually } from './helpers/eventually.js'
import { withRedis } from './helpers/fixtures.js'

/*
 * ioredis ends a client for good when a connection attempt is aborted (with Sentinel, the failover
 * detector can do that during a failover: seen in CI as a gateway stuck at 503). reviveWhenEnded
 * starts it again. Here a real client that gives up at once (retryStrategy: null) stands in for it.
 */

async function waitFor (condition: () => boolean, timeoutMs: number, description: string): Promise<boolean> {
  return await eventually(condition, { timeout: timeoutMs, interval: 50, description })
}

t.test('a client that ioredis ended is started again once Redis is back', async (t) => {
  const redis = await withRedis(t)
  const client = new Redis({ host: '127.0.0.1', port: redis.port, retryStrategy: () => null, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  client.on('error', () => {})
  let closing = false
  const revivals: number[] = []
  reviveWhenEnded(client, () => closing, (attempt) => revivals.push(attempt))
  t.teardown(() => { closing = true; client.disconnect() })
  t.ok(await waitFor(() => client.status === 'ready', 5000, 'the client to be ready'))

  await redis.stop()
  t.ok(await waitFor(() => revivals.length >= 2, 5000, 'two revival attempts'), 'ioredis gave up, and revival keeps trying while Redis is away')
  await redis.start()
  t.ok(await waitFor(() => client.status === 'ready', 10_000, 'the revived client to be ready'), `ready again after ${revivals.length} attempts`)
  t.equal(await client.ping(), 'PONG')
})

t.test('a revived subscriber is subscribed again', async (t) => {
  const redis = await withRedis(t)
  const subscriber = new Redis({ host: '127.0.0.1', port: redis.port, retryStrategy: () => null })
  subscriber.on('error', () => {})
  let closing = false
  reviveWhenEnded(subscriber, () => closing, () => {})
  t.teardown(() => { closing = true; subscriber.disconnect() })
  const heard: string[] = []
  subscriber.on('message', (_channel: string, message: string) => { heard.push(message) })
  await subscriber.subscribe('news')
  await redis.stop()
  await waitFor(() => subscriber.status === 'end', 5000, 'ioredis to end the subscriber')
  await redis.start()
  t.ok(await waitFor(() => subscriber.status === 'ready', 10_000, 'the revived subscriber to be ready'), 'started again')
  const publisher = redis.client()
  t.teardown(() => publisher.disconnect())
  t.ok(await waitFor(() => { void publisher.publish('news', 'after').catch(() => undefined); return heard.includes('after') }, 5000, 'the message published after the revival'), 'a message published after the revival arrives')
})

t.test('no revival once the owner is closing', async (t) => {
  const redis = await withRedis(t)
  const client = new Redis({ host: '127.0.0.1', port: redis.port, retryStrategy: () => null })
  client.on('error', () => {})
  let closing = false
  const revivals: number[] = []
  reviveWhenEnded(client, () => closing, (attempt) => revivals.push(attempt))
  await waitFor(() => client.status === 'ready', 5000, 'the client to be ready')
  closing = true
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()))
  await client.quit()
  await ended
  // A fixed sleep on purpose: proving that no revival happens takes a quiet period longer than the
  // first revival delay (200 ms).
  await sleep(600)
  t.same(revivals, [])
  t.equal(client.status, 'end')
})
