import { z } from 'zod'
import { describeSecretValue, describeValue, redactUrl } from './config-messages.js'
import { DURATION_TEXT_PATTERN, formatDuration, parseDuration } from './duration.js'
import { instanceKey } from '../upstream/instance-key.js'

/**
 * The gateway's configuration, defined once. This zod definition is the validator, the source of
 * the TypeScript types (`z.output` below), of the defaults (the `DEFAULT_*` constants it uses) and
 * of `config/gateway.schema.json` and `docs/configuration.md` (`npm run config:schema`).
 *
 * It describes the file as written (after `${ENV}` interpolation): durations are text (`30m`) and
 * become milliseconds, a number or boolean may arrive as the string `${PORT}` interpolated to, and
 * every default goes through the same parsing as a written value. Messages are written for an
 * operator reading one line at start-up; validate-config.ts puts the exact path in front of them.
 * Rules that span several keys (one Redis topology, one JWT key source, …) live in the `transform`
 * of the smallest section that holds all of them; they run only once that section is well-formed.
 */

export const DEFAULT_LISTEN_HOST = '127.0.0.1'
export const DEFAULT_LISTEN_PORT = 8080
export const DEFAULT_TRUST_PROXY = false
export const DEFAULT_REDIS_KEY_PREFIX = 'mcpgw:'
/** A Redis command slower than this is a 503, never a request left hanging (see docs/configuration.md). */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 2_000
export const DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 5_000
/** Session creation waits for no replica unless told to. */
export const DEFAULT_REDIS_WAIT_FOR_REPLICAS = 0
/** How long session creation waits for `waitForReplicas` acknowledgements (Redis WAIT). */
export const DEFAULT_REDIS_WAIT_TIMEOUT_MS = 500
export const DEFAULT_SENTINEL_PORT = 26379
export const DEFAULT_SENTINEL_DB = 0
export const DEFAULT_SENTINEL_TLS = false
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60 * 1000
export const DEFAULT_MAX_LIFETIME_MS = 24 * 60 * 60 * 1000
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
/** 0: no rate limit on initialize. */
export const DEFAULT_INITIALIZE_PER_MINUTE = 0
export const DEFAULT_MAX_PER_PRINCIPAL = 100
/** What happens to an initialize past `maxPerPrincipal`: refused (429), or the principal's oldest session ends. */
export const maxPerPrincipalPolicies = ['refuse', 'evictOldest'] as const
export type MaxPerPrincipalPolicy = typeof maxPerPrincipalPolicies[number]
export const DEFAULT_MAX_PER_PRINCIPAL_POLICY: MaxPerPrincipalPolicy = 'refuse'
/** An upstream answer the gateway holds whole (a JSON body, one SSE event) may be this large. */
export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
/** `clientInfo` and `capabilities` of an initialize, serialized: what a session keeps of its client. */
export const DEFAULT_MAX_CLIENT_STATE_BYTES = 8 * 1024
/**
 * Era bridge: resource subscriptions one session may hold. Each is a field of the session's Redis
 * hash (about 50 bytes of overhead beside its URI): with the client state, a session stays within
 * 16 KiB of Redis (docs/security.md, "Limits").
 */
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION = 64
/** How long an initialize may wait for the upstream's whole answer. */
export const DEFAULT_INITIALIZE_TIMEOUT_MS = 30_000
/** A JWT without `exp` never expires: refused unless the operator says otherwise. */
export const DEFAULT_JWT_REQUIRE_EXP = true
/** CORS answers carry no credentials unless the operator says so. */
export const DEFAULT_CORS_CREDENTIALS = false
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000
export const DEFAULT_STREAMS_RESUMABLE = true
export const DEFAULT_STREAMS_RETENTION_MS = 5 * 60 * 1000
export const DEFAULT_STREAMS_MAX_EVENTS = 1000
export const DEFAULT_STREAMS_KEEP_ALIVE_MS = 15_000
/** 0: off. */
export const DEFAULT_STREAMS_MAX_CONNECTION_TIME_MS = 0
/**
 * Calls one session keeps running on one replica after their client left (docs/streams.md,
 * "Limits"): past it the oldest is ended. Each holds an upstream request and about 200 KiB of the
 * gateway's memory (docs/security.md).
 */
export const DEFAULT_STREAMS_MAX_ABANDONED_PER_SESSION = 8
/** The same for all sessions of one principal, on one replica: past it a new one ends at once. */
export const DEFAULT_STREAMS_MAX_ABANDONED_PER_PRINCIPAL = 32
/**
 * The same for the whole replica: an adversarial run measured about 0.5 MiB of RSS per such call
 * receiving an event a second, so 256 stay well inside the Kubernetes manifest's 512 MiB.
 */
export const DEFAULT_STREAMS_MAX_ABANDONED = 256
/** What one stream may keep in the event store; events past it are relayed live but not kept. */
export const DEFAULT_STREAMS_MAX_BYTES_PER_STREAM = 2 * 1024 * 1024
/** What all streams of one session may keep together, with a fixed overhead per stream and event (docs/streams.md). */
export const DEFAULT_STREAMS_MAX_BYTES_PER_SESSION = 4 * 1024 * 1024
export const DEFAULT_JWT_CLAIM = 'sub'
export const DEFAULT_METRICS_ENABLED = true
export const DEFAULT_METRICS_PATH = '/metrics'
export const DEFAULT_TRACING_SERVICE_NAME = 'mcp-session-gateway'
export const DEFAULT_TRACING_SAMPLE_RATIO = 1
/** Shorter admin tokens are refused: the admin API can end every session. */
export const MIN_ADMIN_TOKEN_LENGTH = 16
/** HS256 needs a key at least as long as its output (RFC 7518 §3.2). */
export const MIN_JWT_SECRET_BYTES = 32
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
export const DEFAULT_LOG_LEVEL: LogLevel = 'info'

export const upstreamEras = ['auto', 'legacy', 'modern'] as const
export type UpstreamEra = typeof upstreamEras[number]
export const DEFAULT_UPSTREAM_ERA: UpstreamEra = 'auto'

/** Stateful upstreams (docs/stateful-upstreams.md): how a new session picks its instance. */
export const balanceModes = ['leastSessions', 'roundRobin'] as const
export type BalanceMode = typeof balanceModes[number]
export const DEFAULT_BALANCE: BalanceMode = 'leastSessions'
export const DEFAULT_UPSTREAM_SESSIONS = false
/** A tools/call whose fate is unknown when its instance fails is answered with an error, never run twice. */
export const DEFAULT_RETRY_TOOL_CALLS = false
/** A busy instance is not a dead one: it has at least this long to answer a health check. */
export const MIN_HEALTH_CHECK_INTERVAL_MS = 1_000
export const DEFAULT_HEALTH_CHECK_INTERVAL_MS = 10_000
/**
 * Nor is an instance that misses one check: it is given up after this many failed checks in a row,
 * with no byte from it meanwhile (docs/stateful-upstreams.md, "Health").
 */
export const DEFAULT_HEALTH_CHECK_FAILURE_THRESHOLD = 3

export const getStreamModes = ['reject', 'forward'] as const
export type GetStreamMode = typeof getStreamModes[number]
export const DEFAULT_GET_STREAM: GetStreamMode = 'reject'
/**
 * Cookies are not passed between clients and upstreams unless a route says so: with several routes
 * on one origin, one upstream's Set-Cookie would otherwise reach the others' upstreams.
 */
export const DEFAULT_PASS_COOKIES = false

/** What an interpolated `${PORT}` looks like: digits. Longer ones would lose precision. */
export const INTEGER_TEXT_PATTERN = /^\d{1,15}$/
/** An interpolated ratio such as `${RATIO:-0.5}`. */
export const DECIMAL_TEXT_PATTERN = /^(\d+(\.\d*)?|\.\d+)$/

const REDIS_PROTOCOLS = ['redis:', 'rediss:'] as const
const HTTP_PROTOCOLS = ['http:', 'https:'] as const
const HOSTNAME_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)$/
const SCHEME_WILDCARD_PATTERN = /^[a-z][a-z0-9+.-]*:\/\/\*$/
const SENTINEL_ADDRESS_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/
/** RFC 9110 §5.6.2 token characters. */
const HEADER_NAME_PATTERN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/
/** No `*` or `:`: Fastify would read them as a wildcard or a parameter, not as the literal path. */
const ROUTE_PATH_PATTERN = /^\/[A-Za-z0-9._~!$&'()+,;=@/-]*$/

/** What a message function is handed: zod's raw issue, of which only the input matters here. */
interface RawIssue { readonly input?: unknown }

// ---------------------------------------------------------------------------------------------
// Building blocks. Each one carries its own message, so that whichever branch of a union fails,
// the operator reads the same sentence.

function text (options: { secret?: boolean } = {}) {
  const show = options.secret === true ? describeSecretValue : describeValue
  const message = (issue: RawIssue): string => issue.input === undefined ? 'is required' : `must be a non-empty string, got ${show(issue.input)}`
  return z.string({ error: message }).min(1, { error: message })
}

function integer (min: number, max: number) {
  const message = (issue: RawIssue): string => {
    const value = issue.input
    if (value === undefined) return 'is required'
    return typeof value === 'number' && Number.isInteger(value)
      ? `must be between ${min} and ${max}, got ${value}`
      : `must be an integer, got ${describeValue(value)}`
  }
  const range = z.int({ error: message }).min(min, { error: message }).max(max, { error: message })
  return z.union([range, z.string({ error: message }).regex(INTEGER_TEXT_PATTERN, { error: message }).transform(Number).pipe(range)], { error: message })
}

function ratio () {
  const message = (issue: RawIssue): string => `must be a number from 0 to 1, got ${describeValue(issue.input)}`
  const range = z.number({ error: message }).min(0, { error: message }).max(1, { error: message })
  return z.union([range, z.string({ error: message }).regex(DECIMAL_TEXT_PATTERN, { error: message }).transform(Number).pipe(range)], { error: message })
}

function flag () {
  const message = (issue: RawIssue): string => `must be true or false, got ${describeValue(issue.input)}`
  return z.union([z.boolean({ error: message }), z.enum(['true', 'false'], { error: message }).transform((value) => value === 'true')], { error: message })
}

function oneOf<const T extends readonly [string, ...string[]]> (values: T) {
  return z.enum(values, { error: (issue) => `must be one of ${values.join(', ')}, got ${describeValue(issue.input)}` })
}

/** A duration in milliseconds; the default is written as text and parsed like any other value. */
function duration (fallbackMilliseconds: number) {
  const message = (issue: RawIssue): string => `must be a duration like 500ms, 90s, 30m or 24h, got ${describeValue(issue.input)}`
  return z.string({ error: message })
    .regex(DURATION_TEXT_PATTERN, { error: message })
    .transform((value, context) => {
      const milliseconds = parseDuration(value)
      if (milliseconds === undefined) {
        context.addIssue({ code: 'custom', message: message({ input: value }), input: value })
        return z.NEVER
      }
      if (milliseconds <= 0) {
        context.addIssue({ code: 'custom', message: 'must be longer than 0', input: value })
        return z.NEVER
      }
      return milliseconds
    })
    .prefault(formatDuration(fallbackMilliseconds))
}

/** A duration that may also be 0 (written `0` or `0s`): off. */
function durationOrOff (fallbackMilliseconds: number) {
  const message = (issue: RawIssue): string => `must be 0 (off) or a duration like 500ms, 90s, 30m or 24h, got ${describeValue(issue.input)}`
  return z.union([z.literal(0), z.string().regex(/^\s*(0|\d+(ms|s|m|h))\s*$/, { error: message })], { error: message })
    .transform((value, context) => {
      const milliseconds = value === 0 || value.trim() === '0' ? 0 : parseDuration(value)
      if (milliseconds === undefined) {
        context.addIssue({ code: 'custom', message: message({ input: value }), input: value })
        return z.NEVER
      }
      return milliseconds
    })
    .prefault(fallbackMilliseconds === 0 ? 0 : formatDuration(fallbackMilliseconds))
}

/** Why `text` is not a URL with one of `protocols`, or undefined. Credentials never appear. */
function urlProblem (value: string, protocols: readonly string[]): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return `must be an absolute URL, got ${JSON.stringify(redactUrl(value))}`
  }
  return protocols.includes(url.protocol) ? undefined : `must use ${protocols.join(' or ')}, got ${JSON.stringify(url.protocol)}`
}

function url (protocols: readonly string[]) {
  return text({ secret: true }).superRefine((value, context) => {
    const problem = urlProblem(value, protocols)
    if (problem !== undefined) context.addIssue({ code: 'custom', message: problem, input: value })
  })
}

function list<T extends z.ZodType> (item: T, options: { nonEmpty?: boolean } = {}) {
  const schema = z.array(item, { error: (issue) => issue.input === undefined ? 'is required' : `must be a list, got ${describeValue(issue.input)}` })
  return options.nonEmpty === true ? schema.min(1, { error: 'must list at least one entry' }) : schema
}

/** A mapping with only the keys of `shape`: a misspelt `idelTimeout` silently ignored is a production incident. */
function mapping<S extends z.ZodRawShape> (shape: S) {
  const allowed = Object.keys(shape).join(', ')
  return z.strictObject(shape, {
    error: (issue) => issue.code === 'unrecognized_keys'
      ? `unknown key (allowed here: ${allowed})`
      : `must be a mapping, got ${describeValue(issue.input)}`
  })
}

/** A mapping whose keys all have defaults: absent or empty (`security:` with only comments) means all defaults. */
function section<S extends z.ZodRawShape> (shape: S) {
  const schema = mapping(shape)
  return schema.nullish().transform((value) => value ?? schema.parse({}))
}

function hostnames () {
  const example = 'e.g. app.example.com or [::1]'
  const entry = text().superRefine((value, context) => {
    // What the gateway compares requests with is the name as URL serialises it (security/request-authority.ts).
    if (!HOSTNAME_PATTERN.test(value) || !URL.canParse(`http://${value}`)) {
      context.addIssue({ code: 'custom', message: `must be a hostname without scheme or port (${example}), got ${JSON.stringify(value)}`, input: value })
    }
  })
  return z.array(entry, { error: (issue) => `must be a list of strings, got ${describeValue(issue.input)}` })
    .nullish()
    .transform((value) => value ?? null)
}

/** `security.allowedOrigins`: full origins, bare hostnames (port-agnostic) or `scheme://*`. */
function origins () {
  const example = 'e.g. https://app.example.com:8443, app.example.com, [::1] or chrome-extension://*'
  const entry = text().superRefine((value, context) => {
    if (SCHEME_WILDCARD_PATTERN.test(value) || HOSTNAME_PATTERN.test(value)) return
    const origin = URL.canParse(value) ? new URL(value).origin : 'null'
    if (origin === 'null' || origin !== value.replace(/\/$/, '').toLowerCase()) {
      context.addIssue({ code: 'custom', message: `must be an origin (scheme://host[:port], no path), a hostname or scheme://* (${example}), got ${JSON.stringify(value)}`, input: value })
    }
  })
  return z.array(entry, { error: (issue) => `must be a list of strings, got ${describeValue(issue.input)}` })
    .nullish()
    .transform((value) => value ?? null)
}

function optionalText (options: { secret?: boolean } = {}) {
  return text(options).nullish().transform((value) => value ?? undefined)
}

// ---------------------------------------------------------------------------------------------
// Sections, in the order of config/gateway.yaml.

const listenSchema = section({
  host: text().prefault(DEFAULT_LISTEN_HOST).describe('Address to listen on (`0.0.0.0` in containers).'),
  port: integer(0, 65535).prefault(DEFAULT_LISTEN_PORT).describe('Port to listen on; `0` picks a free one.'),
  trustProxy: z.union([flag(), list(text())], { error: (issue) => `must be true or false, or a list of proxy addresses/CIDRs, got ${describeValue(issue.input)}` })
    .prefault(DEFAULT_TRUST_PROXY)
    .describe('Fastify `trustProxy`: `true`, or the proxies\' addresses/CIDRs whose `X-Forwarded-For` is believed. Set it behind a load balancer so that rate limits see the client address.'),
  publicUrl: url(HTTP_PROTOCOLS).superRefine((value, context) => {
    if (URL.canParse(value) && new URL(value).origin !== value.replace(/\/$/, '')) {
      context.addIssue({ code: 'custom', message: `must be an origin (scheme://host[:port], no path), got ${JSON.stringify(value)}`, input: undefined })
    }
  }).nullish().transform((value) => value === null || value === undefined ? undefined : new URL(value).origin)
    .describe('The origin clients use to reach the gateway (e.g. `https://mcp.example.com`): it names the protected resource in OAuth metadata. Absent: taken from each request (`Host`; `X-Forwarded-Proto`/`X-Forwarded-Host` only behind `trustProxy`).')
}).describe('Where the gateway listens.')

const logSchema = section({
  level: oneOf(logLevels).prefault(DEFAULT_LOG_LEVEL).describe('Log level; the `LOG_LEVEL` environment variable overrides it.')
}).describe('Structured (JSON) logs on stdout.')

const sentinelAddress = text().transform((value, context) => {
  const match = SENTINEL_ADDRESS_PATTERN.exec(value)
  const port = Number(match?.[2] ?? DEFAULT_SENTINEL_PORT)
  if (match === null || port < 1 || port > 65535) {
    context.addIssue({ code: 'custom', message: `must be host:port (e.g. 10.0.0.5:${DEFAULT_SENTINEL_PORT}), got ${JSON.stringify(value)}`, input: value })
    return z.NEVER
  }
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port }
})

const sentinelSchema = mapping({
  name: text().describe('The master group name, as in `sentinel monitor <name> …`.'),
  sentinels: list(sentinelAddress, { nonEmpty: true }).describe(`Sentinel addresses, \`host:port\` (port ${DEFAULT_SENTINEL_PORT} when omitted; \`[::1]:26380\` for IPv6).`),
  username: optionalText().describe('ACL user for the Redis master and replicas.'),
  password: optionalText({ secret: true }).describe('Password for the Redis master and replicas; write `${REDIS_PASSWORD}`.'),
  sentinelUsername: optionalText().describe('ACL user for the sentinels themselves.'),
  sentinelPassword: optionalText({ secret: true }).describe('Password for the sentinels themselves.'),
  db: integer(0, 15).prefault(DEFAULT_SENTINEL_DB).describe('Redis database number.'),
  tls: flag().prefault(DEFAULT_SENTINEL_TLS).describe('TLS to the master, the replicas and the sentinels.')
})

/** Every key present, absent ones as undefined: the shape consumers read does not depend on the file. */
function sentinelTopology (sentinel: z.output<typeof sentinelSchema>) {
  return {
    kind: 'sentinel' as const,
    name: sentinel.name,
    sentinels: sentinel.sentinels,
    username: sentinel.username ?? undefined,
    password: sentinel.password ?? undefined,
    sentinelUsername: sentinel.sentinelUsername ?? undefined,
    sentinelPassword: sentinel.sentinelPassword ?? undefined,
    db: sentinel.db,
    tls: sentinel.tls
  }
}

const redisSchema = mapping({
  url: url(REDIS_PROTOCOLS).superRefine((value, context) => {
    // ioredis reads a path that is not a database number as database 0, silently.
    const path = URL.canParse(value) ? new URL(value).pathname : ''
    if (path !== '' && path !== '/' && !/^\/\d{1,5}$/.test(path)) {
      context.addIssue({ code: 'custom', message: `the path names the database and must be /<number> (e.g. /0), got ${JSON.stringify(path)}`, input: undefined })
    }
  }).nullish().describe('Standalone Redis: `redis://` or `rediss://` (TLS), with optional `user:password@` and `/db`. One of `url`, `cluster`, `sentinel`.'),
  cluster: mapping({
    nodes: list(url(REDIS_PROTOCOLS), { nonEmpty: true }).describe('Cluster seed URLs; credentials and TLS (`rediss://`) come from the first one.')
  }).nullish().describe('Redis Cluster. One of `url`, `cluster`, `sentinel`.'),
  sentinel: sentinelSchema.nullish().describe('Redis Sentinel (automatic failover). One of `url`, `cluster`, `sentinel`.'),
  keyPrefix: text().prefault(DEFAULT_REDIS_KEY_PREFIX).describe('Keys are `<keyPrefix>session:<id>`. No `{` or `}` with a cluster.'),
  commandTimeout: duration(DEFAULT_REDIS_COMMAND_TIMEOUT_MS).describe('A slower Redis command answers the client 503.'),
  connectTimeout: duration(DEFAULT_REDIS_CONNECT_TIMEOUT_MS).describe('One connection attempt; start-up waits this long for Redis, then serves 503 until it comes.'),
  waitForReplicas: integer(0, 16).prefault(DEFAULT_REDIS_WAIT_FOR_REPLICAS).describe('Session creation waits until this many replicas hold the session (Redis WAIT), else 503; 0: no wait.'),
  waitTimeout: duration(DEFAULT_REDIS_WAIT_TIMEOUT_MS).describe('How long that wait may take; must be shorter than `commandTimeout` when `waitForReplicas` is set.')
})

const redisSection = redisSchema.nullish().transform((redis, context) => {
  if (redis === null || redis === undefined) return null
  const given = (['url', 'cluster', 'sentinel'] as const).filter((key) => redis[key] !== undefined && redis[key] !== null)
  if (given.length !== 1) {
    context.addIssue({ code: 'custom', message: `needs exactly one of url, cluster or sentinel${given.length > 1 ? `, got ${given.join(' and ')}` : ''}`, input: undefined })
    return z.NEVER
  }
  const topology = redis.url !== undefined && redis.url !== null
    ? { kind: 'standalone' as const, url: redis.url }
    : redis.cluster !== undefined && redis.cluster !== null
      ? { kind: 'cluster' as const, nodes: redis.cluster.nodes }
      : sentinelTopology(redis.sentinel as z.output<typeof sentinelSchema>)
  // A hash tag in the prefix would put every session in one slot: one master would hold them all.
  if (topology.kind === 'cluster' && /[{}]/.test(redis.keyPrefix)) {
    context.addIssue({ code: 'custom', path: ['keyPrefix'], message: 'must not contain { or } with a cluster: a hash tag would put every session on one master', input: undefined })
  }
  if (redis.waitForReplicas > 0 && redis.waitTimeout >= redis.commandTimeout) {
    context.addIssue({ code: 'custom', path: ['waitTimeout'], message: `must be shorter than redis.commandTimeout (${redis.commandTimeout} ms) when waitForReplicas is set, or the command times out first`, input: undefined })
  }
  return {
    topology,
    keyPrefix: redis.keyPrefix,
    commandTimeout: redis.commandTimeout,
    connectTimeout: redis.connectTimeout,
    waitForReplicas: redis.waitForReplicas,
    waitTimeout: redis.waitTimeout
  }
}).describe('Where sessions live; every replica pointing at the same Redis shares them. Without this section sessions live in memory: one instance only, lost on restart (logged as a warning).')

const jwtSchema = mapping({
  jwksUrl: url(HTTP_PROTOCOLS).nullish().describe('JWKS URL of the issuer. One of `jwksUrl`, `publicKey`, `secret`.'),
  publicKey: optionalText().describe('PEM public key (`-----BEGIN PUBLIC KEY-----`). One of `jwksUrl`, `publicKey`, `secret`.'),
  secret: optionalText({ secret: true }).describe(`HMAC secret (HS*), at least ${MIN_JWT_SECRET_BYTES} bytes. One of \`jwksUrl\`, \`publicKey\`, \`secret\`.`),
  issuer: optionalText().describe('Required `iss` claim.'),
  audience: optionalText().describe('Required `aud` claim.'),
  claim: text().prefault(DEFAULT_JWT_CLAIM).describe('The claim that names the principal: a stable identity, so a refreshed token keeps its sessions. Its value must be a non-empty JSON string: a token whose claim is a number, or anything else, is refused (401).'),
  authorizationServers: list(url(HTTP_PROTOCOLS)).nullish().describe('Authorization servers named in the protected resource metadata (RFC 9728) the gateway serves for its routes. Absent: `[issuer]`.'),
  scopesSupported: list(text()).nullish().describe('`scopes_supported` of that metadata, when set.'),
  requireExp: flag().prefault(DEFAULT_JWT_REQUIRE_EXP).describe('Refuse tokens without an `exp` claim (a token that never expires stays usable forever once leaked).')
})

const bindingSchema = mapping({
  header: text().nullish().describe('Bind to a hash of this request header\'s value (e.g. `authorization`). One of `header`, `jwt`.'),
  jwt: jwtSchema.nullish().describe('Bind to a claim of a JWT verified on every request (401 when missing or invalid). One of `header`, `jwt`.')
})

const bindingSection = bindingSchema.nullish().transform((binding, context) => {
  if (binding === null || binding === undefined) return { kind: 'none' as const }
  const header = binding.header ?? undefined
  const jwt = binding.jwt ?? undefined
  if ((header === undefined) === (jwt === undefined)) {
    context.addIssue({ code: 'custom', message: 'needs exactly one of header or jwt', input: undefined })
    return z.NEVER
  }
  if (header !== undefined) {
    if (!HEADER_NAME_PATTERN.test(header)) {
      context.addIssue({ code: 'custom', path: ['header'], message: `must be an HTTP header name, got ${JSON.stringify(header)}`, input: undefined })
      return z.NEVER
    }
    return { kind: 'header' as const, header: header.toLowerCase() }
  }
  const keys = jwt as z.output<typeof jwtSchema>
  const sources = (['jwksUrl', 'publicKey', 'secret'] as const).filter((key) => keys[key] !== undefined && keys[key] !== null)
  if (sources.length !== 1) {
    context.addIssue({ code: 'custom', path: ['jwt'], message: `needs exactly one of jwksUrl, publicKey or secret${sources.length > 1 ? `, got ${sources.join(' and ')}` : ''}`, input: undefined })
    return z.NEVER
  }
  if (keys.secret !== undefined && Buffer.byteLength(keys.secret) < MIN_JWT_SECRET_BYTES) {
    context.addIssue({ code: 'custom', path: ['jwt', 'secret'], message: `must be at least ${MIN_JWT_SECRET_BYTES} bytes`, input: undefined })
  }
  if (keys.publicKey !== undefined && !keys.publicKey.includes('-----BEGIN PUBLIC KEY-----')) {
    context.addIssue({ code: 'custom', path: ['jwt', 'publicKey'], message: 'must be a PEM public key (-----BEGIN PUBLIC KEY-----)', input: undefined })
  }
  return {
    kind: 'jwt' as const,
    jwksUrl: keys.jwksUrl ?? undefined,
    publicKey: keys.publicKey ?? undefined,
    secret: keys.secret ?? undefined,
    issuer: keys.issuer ?? undefined,
    audience: keys.audience ?? undefined,
    claim: keys.claim,
    authorizationServers: keys.authorizationServers ?? (keys.issuer === undefined || keys.issuer === null ? [] : [keys.issuer]),
    scopesSupported: keys.scopesSupported ?? undefined,
    requireExp: keys.requireExp
  }
}).describe('Bind sessions to the caller\'s identity: a request from anyone else gets 404, as if the id did not exist. Without it sessions are not bound.')

const sessionsSchema = section({
  idleTimeout: duration(DEFAULT_IDLE_TIMEOUT_MS).describe('Sliding idle timeout: every accepted request extends it.'),
  maxLifetime: duration(DEFAULT_MAX_LIFETIME_MS).describe('Absolute lifetime, counted from creation.'),
  binding: bindingSection,
  maxPerPrincipal: integer(0, 1_000_000).prefault(DEFAULT_MAX_PER_PRINCIPAL).describe('Live sessions one principal may hold (only with a binding); over it, `maxPerPrincipalPolicy` decides. 0: unlimited.'),
  maxPerPrincipalPolicy: oneOf(maxPerPrincipalPolicies).prefault(DEFAULT_MAX_PER_PRINCIPAL_POLICY).describe('Past `maxPerPrincipal`: `refuse` answers the initialize 429; `evictOldest` ends that principal\'s oldest session instead (its client then gets 404).')
}).describe('Session lifetimes and identity binding.')

const limitsSchema = section({
  maxBodyBytes: integer(1, 1024 * 1024 * 1024).prefault(DEFAULT_MAX_BODY_BYTES).describe('Larger request bodies get 413 before the upstream sees them.'),
  initializePerMinute: integer(0, 1_000_000).prefault(DEFAULT_INITIALIZE_PER_MINUTE).describe('initialize requests per minute per principal and per client address (both are counted: a header binding lets a client choose its principal), shared by all replicas through Redis; excess gets 429 with Retry-After. 0: off.'),
  maxResponseBytes: integer(1024, 1024 * 1024 * 1024).prefault(DEFAULT_MAX_RESPONSE_BYTES).describe('Largest upstream answer the gateway holds whole: a JSON body it reads (initialize, bridged requests) or one SSE event it relays (every SSE event of a legacy session, docs/streams.md). Larger: 502 `MCPGW_UPSTREAM_RESPONSE_TOO_LARGE` (on a stream already open: that error as its last event). Modern (2026-07-28) answers pass through untouched and are not limited.'),
  maxClientStateBytes: integer(256, 1024 * 1024).prefault(DEFAULT_MAX_CLIENT_STATE_BYTES).describe('Largest `clientInfo` + `capabilities` of an initialize, serialized, that a session keeps; larger: 400 and nothing is minted.'),
  maxSubscriptionsPerSession: integer(1, 100_000).prefault(DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION).describe('Era bridge: resource subscriptions one session may hold; one more is answered -32602.')
}).describe('Request and resource limits.')

const streamsSchema = section({
  resumable: flag().prefault(DEFAULT_STREAMS_RESUMABLE).describe('Give every SSE event of a legacy session an id and keep the events in Redis (the session store), so that a client whose connection dropped resumes with `GET` + `Last-Event-ID` on any replica, and a dropped client does not cancel its call. false: no ids, nothing stored, a dropped client ends the upstream request.'),
  retention: duration(DEFAULT_STREAMS_RETENTION_MS).describe('How long a stream\'s events are kept after its last event, and how long a call whose client left runs on without anyone resuming it.'),
  maxEvents: integer(1, 1_000_000).prefault(DEFAULT_STREAMS_MAX_EVENTS).describe('Most events kept per stream: older ones are dropped first.'),
  maxBytesPerStream: integer(0, 1024 * 1024 * 1024).prefault(DEFAULT_STREAMS_MAX_BYTES_PER_STREAM).describe('Most bytes one stream keeps in the event store (its events\' data, with a fixed overhead per stream and per event). Events past it are still relayed live but not kept: a resume from before that point gets what was kept and then the stream ends; from after it, the id is not held. 0: no limit.'),
  maxBytesPerSession: integer(0, 1024 * 1024 * 1024).prefault(DEFAULT_STREAMS_MAX_BYTES_PER_SESSION).describe('Most bytes all streams of one session keep together, counted the same way, across replicas; past it, as for `maxBytesPerStream`, until older streams expire. 0: no limit.'),
  maxAbandonedPerSession: integer(1, 1_000_000).prefault(DEFAULT_STREAMS_MAX_ABANDONED_PER_SESSION).describe('Calls of one session that run on, on one replica, after their client left (for the client to resume). Past it, the oldest is ended: its upstream request is closed, the upstream is sent `notifications/cancelled`, and its pending request is answered with `MCPGW_ABANDONED_STREAMS_EXCEEDED`.'),
  maxAbandonedPerPrincipal: integer(1, 1_000_000).prefault(DEFAULT_STREAMS_MAX_ABANDONED_PER_PRINCIPAL).describe('The same for all sessions of one principal (with a binding), on one replica; past it a call whose client leaves is ended at once, as with `resumable: false`.'),
  maxAbandoned: integer(1, 1_000_000).prefault(DEFAULT_STREAMS_MAX_ABANDONED).describe('The same for the whole replica.'),
  keepAlive: durationOrOff(DEFAULT_STREAMS_KEEP_ALIVE_MS).describe('A `: keepalive` comment on every SSE stream of a legacy session after this long without output, so that idle timeouts of load balancers do not cut quiet calls. 0: off.'),
  maxConnectionTime: durationOrOff(DEFAULT_STREAMS_MAX_CONNECTION_TIME_MS).describe('End a client\'s SSE response after this long, after an event with an id and a `retry:` field; the client resumes with `Last-Event-ID` (SSE polling, for load balancers that limit connection time). Needs `resumable`. 0: off.')
}).describe('Resumable SSE streams of legacy sessions (docs/streams.md).')

const adminSchema = mapping({
  token: z.string({ error: (issue) => `must be a string, got ${describeSecretValue(issue.input)}` }).nullish()
    .describe(`Bearer token of the admin API (\`/admin/sessions\`), at least ${MIN_ADMIN_TOKEN_LENGTH} characters; write \`\${MCPGW_ADMIN_TOKEN:-}\`. Empty or absent: no admin API (its paths answer 404).`)
})

const adminSection = adminSchema.nullish().transform((admin, context) => {
  // `token: ${MCPGW_ADMIN_TOKEN:-}` with the variable unset: no admin API, on purpose.
  const token = admin?.token ?? ''
  if (token === '') return null
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) {
    context.addIssue({ code: 'custom', path: ['token'], message: `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`, input: undefined })
    return z.NEVER
  }
  return { token }
}).describe('The admin API; it exists only with a token.')

const metricsSchema = section({
  enabled: flag().prefault(DEFAULT_METRICS_ENABLED).describe('Serve Prometheus metrics.'),
  path: text().superRefine((value, context) => {
    if (!value.startsWith('/')) context.addIssue({ code: 'custom', message: `must start with "/", got ${JSON.stringify(value)}`, input: value })
    else if (value === '/healthz' || value === '/readyz' || value === '/admin' || value.startsWith('/admin/')) {
      context.addIssue({ code: 'custom', message: `${value} is served by the gateway itself; choose another path`, input: value })
    }
  }).prefault(DEFAULT_METRICS_PATH).describe('Path of the Prometheus text endpoint.'),
  port: integer(0, 65535).nullish().describe('Serve metrics on this port of their own; absent: on the listen port.'),
  host: text().nullish().describe('Address of the metrics port; absent: `listen.host`.')
}).describe('Prometheus metrics.')

const tracingSchema = mapping({
  otlpEndpoint: z.string({ error: (issue) => `must be a string, got ${describeValue(issue.input)}` }).nullish()
    .describe('OTLP/HTTP traces URL, e.g. `http://otel-collector:4318/v1/traces`. Empty or absent: no tracing.'),
  serviceName: text().prefault(DEFAULT_TRACING_SERVICE_NAME).describe('The `service.name` resource attribute.'),
  sampleRatio: ratio().prefault(DEFAULT_TRACING_SAMPLE_RATIO).describe('Share of new traces recorded, from 0 to 1 (a caller\'s sampled flag is honoured).')
})

const tracingSection = tracingSchema.nullish().transform((tracing, context) => {
  const endpoint = tracing?.otlpEndpoint ?? ''
  if (tracing === null || tracing === undefined || endpoint === '') return null
  const problem = urlProblem(endpoint, HTTP_PROTOCOLS)
  if (problem !== undefined) {
    context.addIssue({ code: 'custom', path: ['otlpEndpoint'], message: problem, input: undefined })
    return z.NEVER
  }
  return { otlpEndpoint: endpoint, serviceName: tracing.serviceName, sampleRatio: tracing.sampleRatio }
}).describe('OpenTelemetry traces over OTLP/HTTP; off unless an endpoint is set.')

const securitySchema = section({
  allowedOrigins: origins().describe('Origins allowed in `Origin`: a full origin (`https://app.example.com:8443`: scheme, host and port must match exactly), a bare hostname (`app.example.com`, any scheme and port; `[::1]` for IPv6) or a whole scheme (`chrome-extension://*`). Configuring it also turns on CORS for these origins. Absent: on a loopback listen address only localhost, otherwise nothing is restricted.'),
  corsCredentials: flag().prefault(DEFAULT_CORS_CREDENTIALS).describe('CORS: answer allowed origins with `Access-Control-Allow-Credentials: true` (cookies, HTTP auth). Off unless set.'),
  allowedHosts: hostnames().describe('Hostnames allowed in `Host` (port-agnostic). Absent: as for `allowedOrigins`.')
}).describe('DNS-rebinding defence: a request whose `Origin` (when present) or `Host` is not allowed gets 403.')

const routePath = text().superRefine((value, context) => {
  if (!ROUTE_PATH_PATTERN.test(value)) {
    context.addIssue({ code: 'custom', message: `must be a literal URL path starting with "/" (no query, "*" or ":"), got ${JSON.stringify(value)}`, input: value })
  } else if ((reservedPaths as readonly string[]).includes(value) || value === '/admin' || value.startsWith('/admin/')) {
    context.addIssue({ code: 'custom', message: `${value} is reserved for the gateway's own endpoints`, input: value })
  }
})

const routeSchema = mapping({
  path: routePath.describe('Literal path clients use on the gateway, e.g. `/mcp` (not `/healthz`, `/readyz`, `/metrics` or `/admin`).'),
  upstream: z.union([url(HTTP_PROTOCOLS), list(url(HTTP_PROTOCOLS), { nonEmpty: true })], {
    error: (issue) => issue.input === undefined ? 'is required' : `must be an http(s):// URL or a list of them, got ${describeSecretValue(issue.input)}`
  }).describe('`http(s)://` URL of the upstream MCP endpoint, or a list of the URLs of several instances of one stateful server (needs `upstreamSessions: true`, docs/stateful-upstreams.md).'),
  upstreamSessions: flag().prefault(DEFAULT_UPSTREAM_SESSIONS).describe('The upstream keeps its own sessions (a stateful legacy server, such as an SDK\'s default): the gateway initializes one upstream session per gateway session, sends every message of the session to its instance from any replica, and moves it to a live instance when that one fails (docs/stateful-upstreams.md).'),
  balance: oneOf(balanceModes).nullish().describe('`upstreamSessions`: which instance a new session goes to: the one with the fewest live sessions (counted in the session store, across replicas), or the next in turn. Absent: `leastSessions`.'),
  retryToolCalls: flag().nullish().describe('`upstreamSessions`: send a `tools/call` again on the new instance when its instance failed after the call reached it (it may then run twice). Off (the default): the client gets a JSON-RPC error for that call and the session goes on.'),
  healthCheck: mapping({
    interval: duration(DEFAULT_HEALTH_CHECK_INTERVAL_MS).describe('How often each instance is checked (an HTTP request; any answer is healthy); at least 1s. The instance has the interval to answer, at most 5s.'),
    failureThreshold: integer(1, 100).prefault(DEFAULT_HEALTH_CHECK_FAILURE_THRESHOLD).describe('An instance is given up (its sessions move, its streams end) after this many failed checks in a row during which it sent no byte on any connection: any response head or body chunk from it resets the count. Given up at most `failureThreshold` × `interval` + the check\'s timeout after its last byte (docs/stateful-upstreams.md).')
  }).nullish().transform((value) => value ?? null).describe('`upstreamSessions`: check every instance actively. Passive ejection (a refused or reset connection takes an instance out of placement for a while) is always on.'),
  timeout: duration(DEFAULT_ROUTE_TIMEOUT_MS).describe('Wait this long for the upstream\'s response headers (504 after); a stream may then run as long as it likes.'),
  getStream: oneOf(getStreamModes).nullish().describe('A legacy `GET` (standalone SSE stream) on a live session: `reject` answers 405 at the edge, `forward` sends it to the upstream (bridged: served from `subscriptions/listen`). Absent: `reject`, except `forward` with `upstreamSessions` (a stateful server pushes on it).'),
  passCookies: flag().prefault(DEFAULT_PASS_COOKIES).describe('Pass the client\'s `Cookie` header to the upstream and the upstream\'s `Set-Cookie` back to the client. Off: both are dropped (a browser shares one origin\'s cookies among all its routes, so one upstream could set cookies that reach the others).'),
  upstreamEra: oneOf(upstreamEras).prefault(DEFAULT_UPSTREAM_ERA).describe('What the upstream speaks: `legacy`, `modern` (the gateway bridges legacy clients to a 2026-07-28 server) or `auto` (ask `server/discover` once).'),
  initializeTimeout: duration(DEFAULT_INITIALIZE_TIMEOUT_MS).describe('How long an initialize may wait for the upstream\'s answer (bridged: its `server/discover`; `auto`: also the era probe), 504 after. A client that leaves before then ends the upstream request too, and gets no session.'),
  inputTimeout: duration(DEFAULT_INPUT_TIMEOUT_MS).describe('Era bridge: how long a legacy client has to answer one round of the upstream\'s input requests (elicitation, …).'),
  maxInputRounds: integer(1, 100).prefault(DEFAULT_MAX_INPUT_ROUNDS).describe('Era bridge: `input_required` rounds one request may take.')
})

const routesSchema = z.array(routeSchema, {
  error: (issue) => issue.input === undefined || issue.input === null
    ? 'is required: list at least one { path, upstream }'
    : `must be a list, got ${describeValue(issue.input)}`
}).min(1, { error: 'must list at least one { path, upstream }' })
  .describe('MCP endpoints served by the gateway, each forwarded to its own (stateless) upstream.')

export const gatewayConfigSchema = mapping({
  listen: listenSchema,
  log: logSchema,
  redis: redisSection,
  sessions: sessionsSchema,
  limits: limitsSchema,
  streams: streamsSchema,
  admin: adminSection,
  shutdownGrace: duration(DEFAULT_SHUTDOWN_GRACE_MS).describe('How long SIGTERM waits for requests in flight (streams included) before closing them.'),
  metrics: metricsSchema,
  tracing: tracingSection,
  security: securitySchema,
  routes: routesSchema
}).transform((config, context) => {
  const seen = new Map<string, number>()
  config.routes.forEach((route, index) => {
    const earlier = seen.get(route.path)
    if (earlier !== undefined) context.addIssue({ code: 'custom', path: ['routes', index, 'path'], message: `${route.path} is already served by routes[${earlier}]`, input: undefined })
    seen.set(route.path, index)
  })
  if (config.streams.maxConnectionTime > 0 && !config.streams.resumable) {
    context.addIssue({ code: 'custom', path: ['streams', 'maxConnectionTime'], message: 'needs streams.resumable: true (a client can only come back to a stream the gateway kept)', input: undefined })
  }
  config.routes.forEach((route, index) => {
    if (Array.isArray(route.upstream) && route.upstream.length > 1 && !route.upstreamSessions) {
      context.addIssue({ code: 'custom', path: ['routes', index, 'upstream'], message: 'lists several instances: that needs upstreamSessions: true (a stateless upstream scales behind one URL)', input: undefined })
    }
    const keys = Array.isArray(route.upstream) ? route.upstream.map(instanceKey) : []
    const repeated = keys.findIndex((key, at) => keys.indexOf(key) !== at)
    if (repeated !== -1) {
      context.addIssue({ code: 'custom', path: ['routes', index, 'upstream', repeated], message: `names the same instance as an earlier entry (${keys[repeated] ?? ''}): instances differ by scheme, host or path`, input: undefined })
    }
    if (route.healthCheck !== null && route.healthCheck !== undefined && route.healthCheck.interval < MIN_HEALTH_CHECK_INTERVAL_MS) {
      context.addIssue({ code: 'custom', path: ['routes', index, 'healthCheck', 'interval'], message: `must be at least ${formatDuration(MIN_HEALTH_CHECK_INTERVAL_MS)} (an instance has the interval to answer a check)`, input: undefined })
    }
    for (const key of ['balance', 'retryToolCalls', 'healthCheck'] as const) {
      if (!route.upstreamSessions && route[key] !== null && route[key] !== undefined) {
        context.addIssue({ code: 'custom', path: ['routes', index, key], message: 'only applies with upstreamSessions: true', input: undefined })
      }
    }
    if (route.upstreamSessions && route.upstreamEra === 'modern') {
      context.addIssue({ code: 'custom', path: ['routes', index, 'upstreamEra'], message: 'cannot be modern with upstreamSessions: true (a 2026-07-28 upstream keeps no sessions)', input: undefined })
    }
  })
  const metricsPort = config.metrics.port ?? null
  const clash = config.routes.findIndex((route) => metricsPort === null && route.path === config.metrics.path)
  if (clash !== -1) context.addIssue({ code: 'custom', path: ['routes', clash, 'path'], message: `${config.metrics.path} is served by metrics.path`, input: undefined })
  return {
    listen: config.listen,
    log: config.log,
    redis: config.redis,
    sessions: config.sessions,
    limits: config.limits,
    streams: config.streams,
    security: config.security,
    admin: config.admin,
    shutdownGrace: config.shutdownGrace,
    metrics: { enabled: config.metrics.enabled, path: config.metrics.path, port: metricsPort, host: config.metrics.host ?? config.listen.host },
    tracing: config.tracing,
    // `upstream` is always the first (or only) instance; `instances` lists them all.
    routes: config.routes.map(({ upstream, getStream, balance, retryToolCalls, ...route }) => {
      const instances = typeof upstream === 'string' ? [upstream] : upstream
      return {
        ...route,
        upstream: instances[0] as string,
        instances,
        getStream: getStream ?? (route.upstreamSessions ? 'forward' : DEFAULT_GET_STREAM),
        balance: balance ?? DEFAULT_BALANCE,
        retryToolCalls: retryToolCalls ?? DEFAULT_RETRY_TOOL_CALLS
      }
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Types, derived from the definition. The resolved config is deeply frozen, so deeply readonly.

type DeepReadonly<T> = T extends ReadonlyArray<infer Item>
  ? ReadonlyArray<DeepReadonly<Item>>
  : T extends object ? { readonly [Key in keyof T]: DeepReadonly<T[Key]> } : T

export type GatewayConfig = DeepReadonly<z.output<typeof gatewayConfigSchema>>
export type RouteConfig = GatewayConfig['routes'][number]
export type SecurityConfig = GatewayConfig['security']
export type StreamsConfig = GatewayConfig['streams']
/** null in GatewayConfig: no `redis` section, sessions live in this process's memory (single instance only). */
export type RedisConfig = NonNullable<GatewayConfig['redis']>
/** Exactly one Redis topology. */
export type RedisTopology = RedisConfig['topology']
export type SentinelAddress = Extract<RedisTopology, { kind: 'sentinel' }>['sentinels'][number]
/** Where a session's principal comes from. */
export type SessionBinding = GatewayConfig['sessions']['binding']
export type TracingConfig = NonNullable<GatewayConfig['tracing']>
