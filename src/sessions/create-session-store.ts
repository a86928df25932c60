import type { FastifyBaseLogger } from 'fastify'
import type { GatewayConfig } from '../config/validate-config.js'
import { MemorySessionStore } from './memory-session-store.js'
import { RedisSessionStore } from './redis-session-store.js'
import type { SessionStore } from './session-store.js'

/** Picks the store the config asks for: Redis when a `redis` section exists, memory otherwise. */
export function createSessionStore (config: GatewayConfig, log: FastifyBaseLogger): SessionStore {
  if (config.redis === null) {
    log.warn('no redis section in the config: sessions are kept in memory, for a single gateway instance only; they are lost on restart and invisible to other instances')
    return new MemorySessionStore(config.sessions)
  }
  return new RedisSessionStore({
    ...config.sessions,
    redis: config.redis,
    onConnectionError: (error) => { log.warn({ err: { message: error.message, code: (error as NodeJS.ErrnoException).code } }, 'redis connection error') },
    onExpiryEventsUnavailable: (detail) => { log.warn({ detail }, 'idle and lifetime expiries are not counted in mcpgw_sessions_terminated_total') }
  })
}
