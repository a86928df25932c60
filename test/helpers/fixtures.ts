import { startDemoUpstream, type DemoUpstream, type DemoUpstreamOptions } from '../../demo/upstream.js'
import { startTestGateway, type TestGateway, type TestGatewayOptions } from './gateway.js'
import { startTestRedis, type TestRedis } from './redis-server.js'

/*
 * Each helper starts a real resource and registers its teardown right away (docs/testing.md), so a
 * failing test never leaves a process behind.
 */

export interface Teardown {
  teardown (fn: () => unknown): void
}

export async function withRedis (t: Teardown): Promise<TestRedis> {
  const redis = await startTestRedis()
  t.teardown(() => redis.close())
  return redis
}

export async function withUpstream (t: Teardown, options: DemoUpstreamOptions = {}): Promise<DemoUpstream> {
  const upstream = await startDemoUpstream({ recordRequests: true, ...options })
  t.teardown(() => upstream.close())
  return upstream
}

export async function withGateway (t: Teardown, options: TestGatewayOptions): Promise<TestGateway> {
  const gateway = await startTestGateway(options)
  t.teardown(() => gateway.close())
  return gateway
}

/** The two session stores every behaviour test runs against. */
export type StoreKind = 'memory' | 'redis'
export const storeKinds: readonly StoreKind[] = ['memory', 'redis']

/** The config's `redis` section for a store kind (none for memory). */
export function redisSection (kind: StoreKind, redis: TestRedis, keyPrefix = 'mcpgw-test:'): Record<string, unknown> {
  return kind === 'redis' ? { redis: { url: redis.url, keyPrefix } } : {}
}
