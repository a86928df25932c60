import type { z } from 'zod'
import { ConfigError } from '../errors.js'
import { gatewayConfigSchema, type GatewayConfig } from './config-schema.js'

/**
 * Pure validation of the parsed YAML (after `${ENV}` interpolation) into a frozen, fully defaulted
 * configuration, against the one definition in config-schema.ts. The first problem stops start-up
 * with one line naming the exact path of the key (`routes[1].upstream: ...`).
 */

export {
  DEFAULT_GET_STREAM, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_INITIALIZE_PER_MINUTE, DEFAULT_INPUT_TIMEOUT_MS, DEFAULT_JWT_CLAIM,
  DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_PORT, DEFAULT_LOG_LEVEL, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INPUT_ROUNDS,
  DEFAULT_MAX_LIFETIME_MS, DEFAULT_MAX_PER_PRINCIPAL, DEFAULT_METRICS_ENABLED, DEFAULT_METRICS_PATH,
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS, DEFAULT_REDIS_CONNECT_TIMEOUT_MS, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_WAIT_FOR_REPLICAS,
  DEFAULT_REDIS_WAIT_TIMEOUT_MS, DEFAULT_ROUTE_TIMEOUT_MS, DEFAULT_SENTINEL_DB, DEFAULT_SENTINEL_PORT, DEFAULT_SENTINEL_TLS,
  DEFAULT_SHUTDOWN_GRACE_MS, DEFAULT_TRACING_SAMPLE_RATIO, DEFAULT_TRACING_SERVICE_NAME, DEFAULT_TRUST_PROXY, DEFAULT_UPSTREAM_ERA,
  MIN_ADMIN_TOKEN_LENGTH, MIN_JWT_SECRET_BYTES, getStreamModes, logLevels, reservedPaths, upstreamEras,
  DEFAULT_MAX_PER_PRINCIPAL_POLICY, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_CLIENT_STATE_BYTES, DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION,
  DEFAULT_INITIALIZE_TIMEOUT_MS, DEFAULT_JWT_REQUIRE_EXP, maxPerPrincipalPolicies, DEFAULT_CORS_CREDENTIALS,
  DEFAULT_STREAMS_RESUMABLE, DEFAULT_STREAMS_RETENTION_MS, DEFAULT_STREAMS_MAX_EVENTS, DEFAULT_STREAMS_KEEP_ALIVE_MS, DEFAULT_STREAMS_MAX_CONNECTION_TIME_MS,
  DEFAULT_STREAMS_MAX_BYTES_PER_STREAM, DEFAULT_STREAMS_MAX_BYTES_PER_SESSION, DEFAULT_STREAMS_MAX_ABANDONED_PER_SESSION,
  DEFAULT_STREAMS_MAX_ABANDONED_PER_PRINCIPAL, DEFAULT_STREAMS_MAX_ABANDONED, DEFAULT_PASS_COOKIES,
  DEFAULT_BALANCE, DEFAULT_UPSTREAM_SESSIONS, DEFAULT_RETRY_TOOL_CALLS, balanceModes
} from './config-schema.js'
export type {
  GatewayConfig, GetStreamMode, LogLevel, RedisConfig, RedisTopology, RouteConfig, SecurityConfig, StreamsConfig, SentinelAddress, SessionBinding,
  TracingConfig, UpstreamEra, MaxPerPrincipalPolicy, BalanceMode
} from './config-schema.js'

/** `['routes', 1, 'upstream']` → `routes[1].upstream`; the document itself is `(document)`. */
export function formatConfigPath (path: readonly PropertyKey[]): string {
  let text = ''
  for (const segment of path) {
    text += typeof segment === 'number' ? `[${segment}]` : `${text === '' ? '' : '.'}${String(segment)}`
  }
  return text === '' ? '(document)' : text
}

/** The one line an operator reads: an unknown key is named itself, not its mapping. */
export function formatConfigIssue (issue: z.core.$ZodIssue): string {
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] as string] : issue.path
  return `${formatConfigPath(path)}: ${issue.message}`
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

export function validateConfig (raw: unknown): GatewayConfig {
  // An empty file parses to null: the same as a file with no keys, which then lacks `routes`.
  const result = gatewayConfigSchema.safeParse(raw ?? {})
  if (!result.success) throw new ConfigError(formatConfigIssue(result.error.issues[0] as z.core.$ZodIssue))
  return deepFreeze(result.data)
}
