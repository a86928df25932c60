import { ConfigError } from '../errors.js'
import { parseDuration } from './duration.js'

/**
 * Pure validation of the parsed YAML (after `${ENV}` interpolation) into a frozen, fully defaulted
 * configuration. Every error names the exact path of the key (`routes[1].upstream: ...`); unknown
 * keys are errors, because a misspelt `idelTimeout` silently ignored is a production incident.
 */

export const DEFAULT_LISTEN_HOST = '127.0.0.1'
export const DEFAULT_LISTEN_PORT = 8080
export const DEFAULT_LOG_LEVEL: LogLevel = 'info'
export const DEFAULT_REDIS_KEY_PREFIX = 'mcpgw:'
/** A Redis command slower than this is a 503, never a request left hanging (SPEC: "503, then recovery"). */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 2_000
export const DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 5_000
/** How long session creation waits for `waitForReplicas` acknowledgements (Redis WAIT). */
export const DEFAULT_REDIS_WAIT_TIMEOUT_MS = 500
export const DEFAULT_SENTINEL_PORT = 26379
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60 * 1000
export const DEFAULT_MAX_LIFETIME_MS = 24 * 60 * 60 * 1000
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
export const DEFAULT_MAX_PER_PRINCIPAL = 100
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000
export const DEFAULT_JWT_CLAIM = 'sub'
/** Shorter admin tokens are refused: the admin API can end every session. */
export const MIN_ADMIN_TOKEN_LENGTH = 16
/** Time until the upstream's response headers; an SSE body afterwards may stream for as long as it likes. */
export const DEFAULT_ROUTE_TIMEOUT_MS = 5 * 60 * 1000
/** Era bridge: how long a legacy client has to answer one round of a server's input requests. */
export const DEFAULT_INPUT_TIMEOUT_MS = 2 * 60 * 1000
/** Era bridge: input_required rounds one request may take before the gateway gives up on it. */
export const DEFAULT_MAX_INPUT_ROUNDS = 8

/** Paths the gateway serves itself; a route cannot take them. */
export const reservedPaths = ['/healthz', '/readyz', '/metrics'] as const

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof logLevels[number]

export const upstreamEras = ['auto', 'legacy', 'modern'] as const
export type UpstreamEra = typeof upstreamEras[number]

export const getStreamModes = ['reject', 'forward'] as const
export type GetStreamMode = typeof getStreamModes[number]

export interface RouteConfig {
  /** Path the gateway serves, e.g. `/mcp`. */
  readonly path: string
  /** Absolute http(s) URL of the upstream MCP endpoint. */
  readonly upstream: string
  /** Milliseconds to wait for the upstream's response headers. */
  readonly timeout: number
  /** A legacy GET (standalone SSE stream) on a live session: 405 at the edge, or forwarded. */
  readonly getStream: GetStreamMode
  /** What the upstream speaks; `modern` makes the gateway bridge legacy clients (issue #6). */
  readonly upstreamEra: UpstreamEra
  /** Era bridge: milliseconds a legacy client has to answer one round of input requests. */
  readonly inputTimeout: number
  /** Era bridge: input_required rounds one request may take. */
  readonly maxInputRounds: number
}

export interface SecurityConfig {
  /**
   * Hostnames allowed in `Origin` (port-agnostic; `[::1]` for IPv6; `<scheme>://*` for a whole
   * scheme such as `chrome-extension://*`). null: not configured.
   */
  readonly allowedOrigins: readonly string[] | null
  /** Hostnames allowed in `Host` (port-agnostic). null: not configured. */
  readonly allowedHosts: readonly string[] | null
}

export interface SentinelAddress {
  readonly host: string
  readonly port: number
}

/** Exactly one Redis topology (issue #4). */
export type RedisTopology =
  | { readonly kind: 'standalone', readonly url: string }
  /** Seed nodes; credentials and TLS (`rediss://`) come from the first URL. */
  | { readonly kind: 'cluster', readonly nodes: readonly string[] }
  | {
    readonly kind: 'sentinel'
    /** The master group name, as in `sentinel monitor <name> ...`. */
    readonly name: string
    readonly sentinels: readonly SentinelAddress[]
    readonly username: string | undefined
    readonly password: string | undefined
    readonly sentinelUsername: string | undefined
    readonly sentinelPassword: string | undefined
    readonly db: number
    readonly tls: boolean
  }

export interface RedisConfig {
  readonly topology: RedisTopology
  readonly keyPrefix: string
  readonly commandTimeout: number
  readonly connectTimeout: number
  /** Session creation waits for this many replicas to acknowledge the write (WAIT); 0: no wait. */
  readonly waitForReplicas: number
  readonly waitTimeout: number
}

export interface TracingConfig {
  /** OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces */
  readonly otlpEndpoint: string
  readonly serviceName: string
  /** Share of new traces recorded (a caller's sampled flag is honoured). */
  readonly sampleRatio: number
}

/** Where a session's principal comes from (issue #5). */
export type SessionBinding =
  | { readonly kind: 'none' }
  /** A hash of this request header's value (lower-case name). */
  | { readonly kind: 'header', readonly header: string }
  | {
    readonly kind: 'jwt'
    /** Exactly one key source. */
    readonly jwksUrl: string | undefined
    readonly publicKey: string | undefined
    readonly secret: string | undefined
    readonly issuer: string | undefined
    readonly audience: string | undefined
    /** The claim that names the principal (a stable identity, not the token). */
    readonly claim: string
  }

export interface GatewayConfig {
  readonly listen: {
    readonly host: string
    readonly port: number
    /** Fastify `trustProxy`: false, true, or the proxy addresses/CIDRs whose X-Forwarded-For is believed. */
    readonly trustProxy: boolean | readonly string[]
  }
  readonly log: { readonly level: LogLevel }
  /** null: no `redis` section, sessions live in this process's memory (single instance only). */
  readonly redis: RedisConfig | null
  /** Timeouts in milliseconds. */
  readonly sessions: {
    readonly idleTimeout: number
    readonly maxLifetime: number
    readonly binding: SessionBinding
    /** Live sessions one principal may hold (only with a binding); 0: unlimited. */
    readonly maxPerPrincipal: number
  }
  readonly limits: {
    readonly maxBodyBytes: number
    /** initialize requests per minute per principal (or client address without a binding); 0: unlimited. */
    readonly initializePerMinute: number
  }
  /** null: no admin API at all (its routes answer 404). */
  readonly admin: { readonly token: string } | null
  /** Milliseconds SIGTERM waits for requests in flight (streams included) before closing them. */
  readonly shutdownGrace: number
  /** null: no tracing (the default). */
  readonly tracing: TracingConfig | null
  /** Prometheus metrics: served at `path` on the listen port, or on its own `port` when set. */
  readonly metrics: { readonly enabled: boolean, readonly path: string, readonly port: number | null, readonly host: string }
  readonly security: SecurityConfig
  readonly routes: readonly RouteConfig[]
}

type Section = Record<string, unknown>

function fail (path: string, message: string): never {
  throw new ConfigError(`${path}: ${message}`)
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`
}

/** A mapping with only the allowed keys; `undefined`/`null` becomes an empty mapping. */
function readSection (value: unknown, path: string, allowedKeys: readonly string[]): Section {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) fail(path === '' ? '(document)' : path, `must be a mapping, got ${describe(value)}`)
  for (const key of Object.keys(value)) {
    if (!allowedKeys.includes(key)) {
      fail(path === '' ? key : `${path}.${key}`, `unknown key (allowed here: ${allowedKeys.join(', ')})`)
    }
  }
  return value as Section
}

function readString (value: unknown, path: string, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback
  if (value === undefined) fail(path, 'is required')
  if (typeof value !== 'string' || value.length === 0) fail(path, `must be a non-empty string, got ${describe(value)}`)
  return value
}

function readInteger (value: unknown, path: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  // `${PORT}` interpolates to a string: digits-only strings are read as the integer they spell.
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) value = Number(value)
  if (typeof value !== 'number' || !Number.isInteger(value)) fail(path, `must be an integer, got ${describe(value)}`)
  if (value < min || value > max) fail(path, `must be between ${min} and ${max}, got ${value}`)
  return value
}

function readDuration (value: unknown, path: string, fallback: number): number {
  if (value === undefined) return fallback
  const milliseconds = typeof value === 'string' ? parseDuration(value) : undefined
  if (milliseconds === undefined) fail(path, `must be a duration like 500ms, 90s, 30m or 24h, got ${describe(value)}`)
  if (milliseconds <= 0) fail(path, 'must be longer than 0')
  return milliseconds
}

function readUrl (value: unknown, path: string, protocols: readonly string[]): string {
  const text = readString(value, path)
  let url: URL
  try {
    url = new URL(text)
  } catch {
    fail(path, `must be an absolute URL, got ${JSON.stringify(redactUrl(text))}`)
  }
  if (!protocols.includes(url.protocol)) {
    fail(path, `must use ${protocols.join(' or ')}, got ${JSON.stringify(url.protocol)}`)
  }
  return text
}

/** Config errors are printed; a Redis URL may carry a password. */
function redactUrl (text: string): string {
  return text.replace(/\/\/[^@/]*@/, '//***@')
}

function validateListen (value: unknown): GatewayConfig['listen'] {
  const section = readSection(value, 'listen', ['host', 'port', 'trustProxy'])
  return {
    host: readString(section.host, 'listen.host', DEFAULT_LISTEN_HOST),
    port: readInteger(section.port, 'listen.port', DEFAULT_LISTEN_PORT, 0, 65535),
    trustProxy: Array.isArray(section.trustProxy) ? readStringList(section.trustProxy, 'listen.trustProxy') ?? [] : readBoolean(section.trustProxy, 'listen.trustProxy', false)
  }
}

function validateLog (value: unknown): GatewayConfig['log'] {
  const section = readSection(value, 'log', ['level'])
  return { level: readEnum(section.level, 'log.level', logLevels, DEFAULT_LOG_LEVEL) }
}

function readOptionalString (value: unknown, path: string): string | undefined {
  return value === undefined || value === null ? undefined : readString(value, path)
}

function readBoolean (value: unknown, path: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (value === 'true' || value === 'false') return value === 'true'
  if (typeof value !== 'boolean') fail(path, `must be true or false, got ${describe(value)}`)
  return value
}

function readSentinelAddress (value: unknown, path: string): SentinelAddress {
  const text = readString(value, path)
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text)
  const port = Number(match?.[2] ?? DEFAULT_SENTINEL_PORT)
  if (match === null || port < 1 || port > 65535) fail(path, `must be host:port (e.g. 10.0.0.5:26379), got ${JSON.stringify(text)}`)
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port }
}

function readNonEmptyList (value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) fail(path, value === undefined ? 'is required' : `must be a list, got ${describe(value)}`)
  if (value.length === 0) fail(path, 'must list at least one entry')
  return value
}

function validateTopology (section: Section): RedisTopology {
  const given = (['url', 'cluster', 'sentinel'] as const).filter((key) => section[key] !== undefined && section[key] !== null)
  if (given.length !== 1) {
    fail('redis', given.length === 0 ? 'needs exactly one of url, cluster or sentinel' : `needs exactly one of url, cluster or sentinel, got ${given.join(' and ')}`)
  }
  if (given[0] === 'url') return { kind: 'standalone', url: readUrl(section.url, 'redis.url', ['redis:', 'rediss:']) }
  if (given[0] === 'cluster') {
    const cluster = readSection(section.cluster, 'redis.cluster', ['nodes'])
    const nodes = readNonEmptyList(cluster.nodes, 'redis.cluster.nodes')
    return { kind: 'cluster', nodes: nodes.map((node, index) => readUrl(node, `redis.cluster.nodes[${index}]`, ['redis:', 'rediss:'])) }
  }
  const sentinel = readSection(section.sentinel, 'redis.sentinel',
    ['name', 'sentinels', 'username', 'password', 'sentinelUsername', 'sentinelPassword', 'db', 'tls'])
  return {
    kind: 'sentinel',
    name: readString(sentinel.name, 'redis.sentinel.name'),
    sentinels: readNonEmptyList(sentinel.sentinels, 'redis.sentinel.sentinels').map((entry, index) => readSentinelAddress(entry, `redis.sentinel.sentinels[${index}]`)),
    username: readOptionalString(sentinel.username, 'redis.sentinel.username'),
    password: readOptionalString(sentinel.password, 'redis.sentinel.password'),
    sentinelUsername: readOptionalString(sentinel.sentinelUsername, 'redis.sentinel.sentinelUsername'),
    sentinelPassword: readOptionalString(sentinel.sentinelPassword, 'redis.sentinel.sentinelPassword'),
    db: readInteger(sentinel.db, 'redis.sentinel.db', 0, 0, 15),
    tls: readBoolean(sentinel.tls, 'redis.sentinel.tls', false)
  }
}

function validateRedis (value: unknown): RedisConfig | null {
  if (value === undefined || value === null) return null
  const section = readSection(value, 'redis', ['url', 'cluster', 'sentinel', 'keyPrefix', 'commandTimeout', 'connectTimeout', 'waitForReplicas', 'waitTimeout'])
  const topology = validateTopology(section)
  const keyPrefix = readString(section.keyPrefix, 'redis.keyPrefix', DEFAULT_REDIS_KEY_PREFIX)
  // A hash tag in the prefix would put every session in one slot: one master would hold them all.
  if (topology.kind === 'cluster' && /[{}]/.test(keyPrefix)) fail('redis.keyPrefix', 'must not contain { or } with a cluster: a hash tag would put every session on one master')
  const commandTimeout = readDuration(section.commandTimeout, 'redis.commandTimeout', DEFAULT_REDIS_COMMAND_TIMEOUT_MS)
  const waitForReplicas = readInteger(section.waitForReplicas, 'redis.waitForReplicas', 0, 0, 16)
  const waitTimeout = readDuration(section.waitTimeout, 'redis.waitTimeout', DEFAULT_REDIS_WAIT_TIMEOUT_MS)
  if (waitForReplicas > 0 && waitTimeout >= commandTimeout) {
    fail('redis.waitTimeout', `must be shorter than redis.commandTimeout (${commandTimeout} ms) when waitForReplicas is set, or the command times out first`)
  }
  return {
    topology,
    keyPrefix,
    commandTimeout,
    connectTimeout: readDuration(section.connectTimeout, 'redis.connectTimeout', DEFAULT_REDIS_CONNECT_TIMEOUT_MS),
    waitForReplicas,
    waitTimeout
  }
}

function validateBinding (value: unknown): SessionBinding {
  if (value === undefined || value === null) return { kind: 'none' }
  const section = readSection(value, 'sessions.binding', ['header', 'jwt'])
  if ((section.header === undefined) === (section.jwt === undefined)) fail('sessions.binding', 'needs exactly one of header or jwt')
  if (section.header !== undefined) {
    const header = readString(section.header, 'sessions.binding.header')
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(header)) fail('sessions.binding.header', `must be an HTTP header name, got ${JSON.stringify(header)}`)
    return { kind: 'header', header: header.toLowerCase() }
  }
  const jwt = readSection(section.jwt, 'sessions.binding.jwt', ['jwksUrl', 'publicKey', 'secret', 'issuer', 'audience', 'claim'])
  const sources = (['jwksUrl', 'publicKey', 'secret'] as const).filter((key) => jwt[key] !== undefined && jwt[key] !== null)
  if (sources.length !== 1) fail('sessions.binding.jwt', `needs exactly one of jwksUrl, publicKey or secret${sources.length > 1 ? `, got ${sources.join(' and ')}` : ''}`)
  const secret = readOptionalString(jwt.secret, 'sessions.binding.jwt.secret')
  // HS256 needs a key at least as long as its output (RFC 7518 §3.2).
  if (secret !== undefined && Buffer.byteLength(secret) < 32) fail('sessions.binding.jwt.secret', 'must be at least 32 bytes')
  const publicKey = readOptionalString(jwt.publicKey, 'sessions.binding.jwt.publicKey')
  if (publicKey !== undefined && !publicKey.includes('-----BEGIN PUBLIC KEY-----')) fail('sessions.binding.jwt.publicKey', 'must be a PEM public key (-----BEGIN PUBLIC KEY-----)')
  return {
    kind: 'jwt',
    jwksUrl: jwt.jwksUrl === undefined ? undefined : readUrl(jwt.jwksUrl, 'sessions.binding.jwt.jwksUrl', ['https:', 'http:']),
    publicKey,
    secret,
    issuer: readOptionalString(jwt.issuer, 'sessions.binding.jwt.issuer'),
    audience: readOptionalString(jwt.audience, 'sessions.binding.jwt.audience'),
    claim: readString(jwt.claim, 'sessions.binding.jwt.claim', DEFAULT_JWT_CLAIM)
  }
}

function validateSessions (value: unknown): GatewayConfig['sessions'] {
  const section = readSection(value, 'sessions', ['idleTimeout', 'maxLifetime', 'binding', 'maxPerPrincipal'])
  return {
    idleTimeout: readDuration(section.idleTimeout, 'sessions.idleTimeout', DEFAULT_IDLE_TIMEOUT_MS),
    maxLifetime: readDuration(section.maxLifetime, 'sessions.maxLifetime', DEFAULT_MAX_LIFETIME_MS),
    binding: validateBinding(section.binding),
    maxPerPrincipal: readInteger(section.maxPerPrincipal, 'sessions.maxPerPrincipal', DEFAULT_MAX_PER_PRINCIPAL, 0, 1_000_000)
  }
}

function validateLimits (value: unknown): GatewayConfig['limits'] {
  const section = readSection(value, 'limits', ['maxBodyBytes', 'initializePerMinute'])
  return {
    maxBodyBytes: readInteger(section.maxBodyBytes, 'limits.maxBodyBytes', DEFAULT_MAX_BODY_BYTES, 1, 1024 * 1024 * 1024),
    initializePerMinute: readInteger(section.initializePerMinute, 'limits.initializePerMinute', 0, 0, 1_000_000)
  }
}

function validateMetrics (value: unknown, listenHost: string): GatewayConfig['metrics'] {
  const section = readSection(value, 'metrics', ['enabled', 'path', 'port', 'host'])
  const path = readString(section.path, 'metrics.path', '/metrics')
  if (!path.startsWith('/')) fail('metrics.path', `must start with "/", got ${JSON.stringify(path)}`)
  return {
    enabled: readBoolean(section.enabled, 'metrics.enabled', true),
    path,
    port: section.port === undefined || section.port === null ? null : readInteger(section.port, 'metrics.port', 0, 0, 65535),
    host: readString(section.host, 'metrics.host', listenHost)
  }
}

function validateTracing (value: unknown): TracingConfig | null {
  if (value === undefined || value === null) return null
  const section = readSection(value, 'tracing', ['otlpEndpoint', 'serviceName', 'sampleRatio'])
  if (section.otlpEndpoint === undefined || section.otlpEndpoint === '') return null
  const sampleRatio = section.sampleRatio === undefined ? 1 : section.sampleRatio
  if (typeof sampleRatio !== 'number' || sampleRatio < 0 || sampleRatio > 1) fail('tracing.sampleRatio', `must be a number from 0 to 1, got ${describe(sampleRatio)}`)
  return {
    otlpEndpoint: readUrl(section.otlpEndpoint, 'tracing.otlpEndpoint', ['http:', 'https:']),
    serviceName: readString(section.serviceName, 'tracing.serviceName', 'mcp-session-gateway'),
    sampleRatio
  }
}

function validateAdmin (value: unknown): GatewayConfig['admin'] {
  if (value === undefined || value === null) return null
  const section = readSection(value, 'admin', ['token'])
  // `token: ${MCPGW_ADMIN_TOKEN:-}` with the variable unset: no admin API, on purpose.
  if (section.token === undefined || section.token === null || section.token === '') return null
  const token = readString(section.token, 'admin.token')
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) fail('admin.token', `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`)
  return { token }
}

function readStringList (value: unknown, path: string): readonly string[] | null {
  if (value === undefined || value === null) return null
  if (!Array.isArray(value)) fail(path, `must be a list of strings, got ${describe(value)}`)
  return value.map((item, index) => readString(item, `${path}[${index}]`))
}

function readHostnames (value: unknown, path: string, allowSchemeWildcard: boolean): readonly string[] | null {
  const list = readStringList(value, path)
  list?.forEach((entry, index) => {
    const isSchemeWildcard = allowSchemeWildcard && /^[a-z][a-z0-9+.-]*:\/\/\*$/.test(entry)
    if (!isSchemeWildcard && !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)$/.test(entry)) {
      fail(`${path}[${index}]`, `must be a hostname without scheme or port (e.g. app.example.com, [::1]${allowSchemeWildcard ? ' or chrome-extension://*' : ''}), got ${JSON.stringify(entry)}`)
    }
  })
  return list
}

function validateSecurity (value: unknown): SecurityConfig {
  const section = readSection(value, 'security', ['allowedOrigins', 'allowedHosts'])
  return {
    allowedOrigins: readHostnames(section.allowedOrigins, 'security.allowedOrigins', true),
    allowedHosts: readHostnames(section.allowedHosts, 'security.allowedHosts', false)
  }
}

function readEnum<T extends string> (value: unknown, path: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    fail(path, `must be one of ${allowed.join(', ')}, got ${describe(value)}`)
  }
  return value as T
}

function validateRoute (value: unknown, path: string): RouteConfig {
  const section = readSection(value, path, ['path', 'upstream', 'timeout', 'getStream', 'upstreamEra', 'inputTimeout', 'maxInputRounds'])
  const routePath = readString(section.path, `${path}.path`)
  // No `*` or `:`: Fastify would read them as a wildcard or a parameter, not as the literal path.
  if (!/^\/[A-Za-z0-9._~!$&'()+,;=@/-]*$/.test(routePath)) {
    fail(`${path}.path`, `must be a literal URL path starting with "/" (no query, "*" or ":"), got ${JSON.stringify(routePath)}`)
  }
  if ((reservedPaths as readonly string[]).includes(routePath) || routePath === '/admin' || routePath.startsWith('/admin/')) {
    fail(`${path}.path`, `${routePath} is reserved for the gateway's own endpoints`)
  }
  return {
    path: routePath,
    upstream: readUrl(section.upstream, `${path}.upstream`, ['http:', 'https:']),
    timeout: readDuration(section.timeout, `${path}.timeout`, DEFAULT_ROUTE_TIMEOUT_MS),
    getStream: readEnum(section.getStream, `${path}.getStream`, getStreamModes, 'reject'),
    upstreamEra: readEnum(section.upstreamEra, `${path}.upstreamEra`, upstreamEras, 'auto'),
    inputTimeout: readDuration(section.inputTimeout, `${path}.inputTimeout`, DEFAULT_INPUT_TIMEOUT_MS),
    maxInputRounds: readInteger(section.maxInputRounds, `${path}.maxInputRounds`, DEFAULT_MAX_INPUT_ROUNDS, 1, 100)
  }
}

function validateRoutes (value: unknown): readonly RouteConfig[] {
  if (value === undefined || value === null) fail('routes', 'is required: list at least one { path, upstream }')
  if (!Array.isArray(value)) fail('routes', `must be a list, got ${describe(value)}`)
  if (value.length === 0) fail('routes', 'must list at least one { path, upstream }')
  const routes = value.map((route, index) => validateRoute(route, `routes[${index}]`))
  const seen = new Map<string, number>()
  routes.forEach((route, index) => {
    const earlier = seen.get(route.path)
    if (earlier !== undefined) fail(`routes[${index}].path`, `${route.path} is already served by routes[${earlier}]`)
    seen.set(route.path, index)
  })
  return routes
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

export function validateConfig (raw: unknown): GatewayConfig {
  const root = readSection(raw, '', ['listen', 'log', 'redis', 'sessions', 'limits', 'security', 'admin', 'shutdownGrace', 'metrics', 'tracing', 'routes'])
  const listen = validateListen(root.listen)
  const metrics = validateMetrics(root.metrics, listen.host)
  const routes = validateRoutes(root.routes)
  const clash = routes.findIndex((route) => metrics.port === null && route.path === metrics.path)
  if (clash !== -1) fail(`routes[${clash}].path`, `${metrics.path} is served by metrics.path`)
  return deepFreeze({
    listen,
    log: validateLog(root.log),
    redis: validateRedis(root.redis),
    sessions: validateSessions(root.sessions),
    limits: validateLimits(root.limits),
    security: validateSecurity(root.security),
    admin: validateAdmin(root.admin),
    shutdownGrace: readDuration(root.shutdownGrace, 'shutdownGrace', DEFAULT_SHUTDOWN_GRACE_MS),
    metrics,
    tracing: validateTracing(root.tracing),
    routes
  })
}
