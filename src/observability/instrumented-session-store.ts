import type { GatewayMetrics } from './metrics.js'
import type { SessionStore } from '../sessions/session-store.js'

/*
 * Times every session-store call (one Redis round trip for the request-path operations) without the
 * stores knowing about metrics. `mcpgw_redis_duration_seconds_count{operation="touch"}` divided by the
 * proxied requests is the number of Redis round trips per request (the benchmark reports it).
 */

type AsyncMethod = 'create' | 'touch' | 'terminate' | 'get' | 'terminateAny' | 'terminatePrincipal' | 'list' | 'consumeRateLimit'
const timed: readonly AsyncMethod[] = ['create', 'touch', 'terminate', 'get', 'terminateAny', 'terminatePrincipal', 'list', 'consumeRateLimit']

export function instrumentSessionStore (store: SessionStore, metrics: GatewayMetrics): SessionStore {
  const instrumented: SessionStore = Object.create(store) as SessionStore
  for (const operation of timed) {
    const original = store[operation].bind(store) as (...args: unknown[]) => Promise<unknown>
    Object.defineProperty(instrumented, operation, {
      value: async (...args: unknown[]) => {
        const stop = metrics.redisDuration.startTimer({ operation })
        try {
          const result = await original(...args)
          stop({ outcome: 'ok' })
          return result
        } catch (error) {
          stop({ outcome: 'error' })
          throw error
        }
      }
    })
  }
  for (const method of ['onExpired', 'isAvailable', 'ready', 'close'] as const) {
    Object.defineProperty(instrumented, method, { value: (store[method] as (...args: unknown[]) => unknown).bind(store) })
  }
  return instrumented
}
