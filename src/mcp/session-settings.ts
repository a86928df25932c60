import type { JsonRpcRequest } from './json-rpc.js'
import type { BridgeStateChange } from '../sessions/session-store.js'

/*
 * The client settings a session keeps for its upstream: the level of `logging/setLevel` and the
 * resources of `resources/subscribe`. The era bridge answers them itself (docs/era-bridge.md); a
 * stateful route replays them on a new instance after a failover (docs/stateful-upstreams.md).
 */

/** The levels `logging/setLevel` accepts (the RFC 5424 severities, as MCP lists them). */
const logLevels = new Set(['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'])

const sessionSettings = new Set(['logging/setLevel', 'resources/subscribe', 'resources/unsubscribe'])

/**
 * What a session keeps of its subscriptions is bounded, so that a session costs a bounded amount of
 * Redis whatever the client sends: a number of subscriptions (limits.maxSubscriptionsPerSession),
 * and their URIs together.
 */
export const MAX_SUBSCRIPTION_URI_BYTES = 3 * 1024

export function isSessionSetting (method: string): boolean {
  return sessionSettings.has(method)
}

/**
 * The session change a setting asks for, or the reason its params are invalid. `subscribed`: what
 * the session holds now (read with it, in the same round trip as the session check).
 */
export function settingChange (message: JsonRpcRequest, subscribed: readonly string[], maxSubscriptions: number): BridgeStateChange | string {
  const params = (message.params ?? {}) as Record<string, unknown>
  if (message.method === 'logging/setLevel') {
    const level = params.level
    return typeof level === 'string' && logLevels.has(level) ? { logLevel: level } : `level must be one of ${[...logLevels].join(', ')}`
  }
  const uri = params.uri
  if (typeof uri !== 'string') return 'uri must be a string'
  if (message.method === 'resources/unsubscribe') return { unsubscribe: uri }
  if (subscribed.includes(uri)) return { subscribe: uri }
  if (subscribed.length >= maxSubscriptions) return `this session already holds ${maxSubscriptions} subscriptions (limits.maxSubscriptionsPerSession)`
  const bytes = subscribed.reduce((total, held) => total + Buffer.byteLength(held), Buffer.byteLength(uri))
  if (bytes > MAX_SUBSCRIPTION_URI_BYTES) return `the session's subscribed URIs would take more than ${MAX_SUBSCRIPTION_URI_BYTES} bytes`
  return { subscribe: uri }
}
