import { Cluster, type Redis } from 'ioredis'
import { reviveWhenEnded, type RedisClient } from './redis-client.js'
import { sessionKeyParser } from './redis-keys.js'
import { sessionIdCreatedAt } from './session-id.js'
import type { ExpiryReason } from './session-store.js'

/*
 * Hears of sessions that Redis expired, to count them by reason and end their streams (docs/operating.md). Redis publishes
 * `__keyevent@<db>__:expired` with the key name when `notify-keyspace-events` includes `Ex`; the
 * data is gone by then, so the reason comes from the id, which carries its creation time: an expiry
 * at or after creation + maxLifetime is the lifetime's, anything earlier the idle timeout's. Every
 * replica hears every event; `SET NX` on a short-lived marker lets exactly one of them count it.
 * A Cluster publishes keyspace events per node: one subscriber per master.
 */

/**
 * Clock skew between the minting gateway and Redis that still counts as "at the deadline"; never
 * more than half the idle timeout, or idle expiries near the end of a short lifetime would be
 * counted as the lifetime's.
 */
const MAX_LIFETIME_TOLERANCE_MS = 2_000
const DEDUPE_MARKER_TTL_MS = 60_000

export interface ExpiryListenerOptions {
  readonly client: RedisClient
  readonly keyPrefix: string
  readonly maxLifetime: number
  readonly idleTimeout: number
  /** `principal`: read from the expired key (a bound key carries it); undefined for an unbound session. */
  readonly onExpired: (reason: ExpiryReason, id: string, principal: string | undefined) => void
  /** Told once when Redis does not publish expiry events, so operators know the counters stay 0. */
  readonly onUnavailable: (detail: string) => void
}

export interface ExpiryListener {
  close (): void
}

export async function listenForExpiries (options: ExpiryListenerOptions): Promise<ExpiryListener> {
  const { client, keyPrefix } = options
  const tolerance = Math.min(MAX_LIFETIME_TOLERANCE_MS, options.idleTimeout / 2)
  const parseSessionKey = sessionKeyParser(keyPrefix)
  const masters: Redis[] = client instanceof Cluster ? client.nodes('master') : [client]
  const subscribers: Redis[] = []
  let closed = false

  for (const master of masters) {
    const settings = await master.config('GET', 'notify-keyspace-events').catch(() => undefined) as string[] | undefined
    const flags = settings?.[1] ?? ''
    if (!(flags.includes('E') && (flags.includes('x') || flags.includes('A')))) {
      options.onUnavailable(`notify-keyspace-events is "${flags}" on ${master.options.host ?? ''}:${String(master.options.port)}; set it to "Ex" to count idle and lifetime expiries`)
    }
    const subscriber = master.duplicate({ enableOfflineQueue: true })
    subscriber.on('error', () => {})
    // Ended by ioredis in a Sentinel failover race like the main client: started again (and subscribed again).
    reviveWhenEnded(subscriber, () => closed, () => {})
    subscribers.push(subscriber)
    await subscriber.psubscribe('__keyevent@*__:expired')
    subscriber.on('pmessage', (_pattern: string, _channel: string, key: string) => {
      const session = parseSessionKey(key)
      if (session === undefined) return
      const { id, principal } = session
      const reason: ExpiryReason = Date.now() >= sessionIdCreatedAt(id) + options.maxLifetime - tolerance ? 'lifetime' : 'idle'
      client.set(`${keyPrefix}expired:${id}`, '1', 'PX', DEDUPE_MARKER_TTL_MS, 'NX').then((won) => {
        if (won === 'OK') options.onExpired(reason, id, principal)
      }, () => {})
    })
  }
  return {
    close: () => {
      closed = true
      for (const subscriber of subscribers) subscriber.disconnect()
    }
  }
}
