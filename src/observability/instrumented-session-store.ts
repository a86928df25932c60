import type { GatewayMetrics } from './metrics.js'
import type { SessionStore } from '../sessions/session-store.js'

/*
 * Times every session-store call (one Redis round trip for the request-path operations) without the
 * stores knowing about metrics. `mcpgw_redis_duration_seconds_count{operation="touch"}` divided by the
 * proxied requests is the number of Redis round trips per request (the benchmark reports it).
 * An object literal of the interface: a store method added later cannot be silently left out.
 */
export function instrumentSessionStore (store: SessionStore, metrics: GatewayMetrics): SessionStore {
  async function timed<T> (operation: string, call: () => Promise<T>): Promise<T> {
    const stop = metrics.redisDuration.startTimer({ operation })
    try {
      const result = await call()
      stop({ outcome: 'ok' })
      return result
    } catch (error) {
      stop({ outcome: 'error' })
      throw error
    }
  }
  return {
    create: async (id, data) => await timed('create', async () => await store.create(id, data)),
    touch: async (id, principal, options) => await timed('touch', async () => await store.touch(id, principal, options)),
    terminate: async (id, owner) => await timed('terminate', async () => await store.terminate(id, owner)),
    get: async (id) => await timed('get', async () => await store.get(id)),
    terminateAny: async (id) => await timed('terminateAny', async () => await store.terminateAny(id)),
    terminatePrincipal: async (principal, onEnded) => await timed('terminatePrincipal', async () => await store.terminatePrincipal(principal, onEnded)),
    list: async (options) => await timed('list', async () => await store.list(options)),
    consumeRateLimit: async (key, limit, windowMs) => await timed('consumeRateLimit', async () => await store.consumeRateLimit(key, limit, windowMs)),
    updateBridgeState: async (id, principal, change) => await timed('updateBridgeState', async () => await store.updateBridgeState(id, principal, change)),
    swapUpstream: async (id, principal, from, to) => await timed('swapUpstream', async () => await store.swapUpstream(id, principal, from, to)),
    takeUpstream: async (id, principal) => await timed('takeUpstream', async () => await store.takeUpstream(id, principal)),
    upstreamSessionCounts: async (route) => await timed('upstreamSessionCounts', async () => await store.upstreamSessionCounts(route)),
    publish: async (channel, message) => await timed('publish', async () => await store.publish(channel, message)),
    subscribe: async (channel, listener) => await store.subscribe(channel, listener),
    onExpired: (listener) => { store.onExpired(listener) },
    streamEvents: (limits) => store.streamEvents(limits),
    isAvailable: () => store.isAvailable(),
    ready: async () => { await store.ready() },
    close: async () => { await store.close() }
  }
}
