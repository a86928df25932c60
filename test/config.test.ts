import t from 'tap'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseDuration } from '../src/config/duration.js'
import { loadConfig, resolveConfig } from '../src/config/load-config.js'
import {
  DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_PORT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_LIFETIME_MS,
  DEFAULT_INPUT_TIMEOUT_MS, DEFAULT_MAX_INPUT_ROUNDS, DEFAULT_MAX_PER_PRINCIPAL, DEFAULT_MAX_PER_PRINCIPAL_POLICY, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_CLIENT_STATE_BYTES, DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION, DEFAULT_INITIALIZE_TIMEOUT_MS,
  DEFAULT_STREAMS_RESUMABLE, DEFAULT_STREAMS_RETENTION_MS, DEFAULT_STREAMS_MAX_EVENTS, DEFAULT_STREAMS_KEEP_ALIVE_MS, DEFAULT_STREAMS_MAX_CONNECTION_TIME_MS, DEFAULT_STREAMS_MAX_BYTES_PER_STREAM, DEFAULT_STREAMS_MAX_BYTES_PER_SESSION,
  DEFAULT_STREAMS_MAX_ABANDONED_PER_SESSION, DEFAULT_STREAMS_MAX_ABANDONED_PER_PRINCIPAL, DEFAULT_STREAMS_MAX_ABANDONED, DEFAULT_PASS_COOKIES, DEFAULT_UPSTREAM_SESSIONS, DEFAULT_BALANCE, DEFAULT_RETRY_TOOL_CALLS, DEFAULT_REDIS_COMMAND_TIMEOUT_MS, DEFAULT_ROUTE_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_GRACE_MS, validateConfig
} from '../src/config/validate-config.js'
import { ConfigError } from '../src/errors.js'

const minimal = { routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:3000/mcp' }] }

t.test('durations', async (t) => {
  const cases: Array<[string, number | undefined]> = [
    ['500ms', 500], ['90s', 90_000], ['30m', 1_800_000], ['24h', 86_400_000], [' 5s ', 5000], ['0s', 0],
    ['30', undefined], ['1.5h', undefined], ['5 m', undefined], ['-1s', undefined], ['1d', undefined], ['', undefined], ['99999999999999999h', undefined]
  ]
  for (const [text, expected] of cases) t.equal(parseDuration(text), expected, JSON.stringify(text))
})

t.test('a minimal config gets every named default', async (t) => {
  const config = validateConfig(minimal)
  t.same(config, {
    listen: { host: DEFAULT_LISTEN_HOST, port: DEFAULT_LISTEN_PORT, trustProxy: false },
    log: { level: 'info' },
    redis: null,
    sessions: { idleTimeout: DEFAULT_IDLE_TIMEOUT_MS, maxLifetime: DEFAULT_MAX_LIFETIME_MS, binding: { kind: 'none' }, maxPerPrincipal: DEFAULT_MAX_PER_PRINCIPAL, maxPerPrincipalPolicy: DEFAULT_MAX_PER_PRINCIPAL_POLICY },
    limits: { maxBodyBytes: DEFAULT_MAX_BODY_BYTES, initializePerMinute: 0, maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES, maxClientStateBytes: DEFAULT_MAX_CLIENT_STATE_BYTES, maxSubscriptionsPerSession: DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION },
    streams: {
      resumable: DEFAULT_STREAMS_RESUMABLE,
      retention: DEFAULT_STREAMS_RETENTION_MS,
      maxEvents: DEFAULT_STREAMS_MAX_EVENTS,
      maxBytesPerStream: DEFAULT_STREAMS_MAX_BYTES_PER_STREAM,
      maxBytesPerSession: DEFAULT_STREAMS_MAX_BYTES_PER_SESSION,
      maxAbandonedPerSession: DEFAULT_STREAMS_MAX_ABANDONED_PER_SESSION,
      maxAbandonedPerPrincipal: DEFAULT_STREAMS_MAX_ABANDONED_PER_PRINCIPAL,
      maxAbandoned: DEFAULT_STREAMS_MAX_ABANDONED,
      keepAlive: DEFAULT_STREAMS_KEEP_ALIVE_MS,
      maxConnectionTime: DEFAULT_STREAMS_MAX_CONNECTION_TIME_MS
    },
    security: { allowedOrigins: null, corsCredentials: false, allowedHosts: null },
    admin: null,
    shutdownGrace: DEFAULT_SHUTDOWN_GRACE_MS,
    metrics: { enabled: true, path: '/metrics', port: null, host: DEFAULT_LISTEN_HOST },
    tracing: null,
    routes: [{
      path: '/mcp',
      upstream: 'http://127.0.0.1:3000/mcp',
      instances: ['http://127.0.0.1:3000/mcp'],
      upstreamSessions: DEFAULT_UPSTREAM_SESSIONS,
      balance: DEFAULT_BALANCE,
      retryToolCalls: DEFAULT_RETRY_TOOL_CALLS,
      healthCheck: null,
      timeout: DEFAULT_ROUTE_TIMEOUT_MS,
      getStream: 'reject',
      passCookies: DEFAULT_PASS_COOKIES,
      upstreamEra: 'auto',
      initializeTimeout: DEFAULT_INITIALIZE_TIMEOUT_MS,
      inputTimeout: DEFAULT_INPUT_TIMEOUT_MS,
      maxInputRounds: DEFAULT_MAX_INPUT_ROUNDS
    }]
  })
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.routes[0]) && Object.isFrozen(config.sessions), 'deeply frozen')
})

t.test('an example config resolves, with ${VAR:-default} and ${VAR}', async (t) => {
  const yaml = `
listen:
  host: 0.0.0.0
  port: 8080
redis:
  url: \${REDIS_URL:-redis://127.0.0.1:6379}   # from the environment
  keyPrefix: "mcpgw:"
sessions:
  idleTimeout: 30m
  maxLifetime: 24h
routes:
  - path: /mcp
    upstream: http://127.0.0.1:3000/mcp
  - path: /other
    upstream: \${OTHER_UPSTREAM}
    timeout: 90s
`
  const withDefault = resolveConfig(yaml, { OTHER_UPSTREAM: 'https://other.example/mcp' })
  t.same(withDefault.redis?.topology, { kind: 'standalone', url: 'redis://127.0.0.1:6379' })
  t.equal(withDefault.redis?.keyPrefix, 'mcpgw:')
  t.equal(withDefault.redis?.commandTimeout, DEFAULT_REDIS_COMMAND_TIMEOUT_MS)
  t.equal(withDefault.routes[1]?.upstream, 'https://other.example/mcp')
  t.equal(withDefault.routes[1]?.timeout, 90_000)
  t.equal(withDefault.listen.host, '0.0.0.0')
  const fromEnv = resolveConfig(yaml.replace('"mcpgw:"', '${PREFIX}'), { REDIS_URL: 'rediss://user:pw@cache:6380/2', OTHER_UPSTREAM: 'http://x/mcp', PREFIX: 'team #1: mcp' })
  t.same(fromEnv.redis?.topology, { kind: 'standalone', url: 'rediss://user:pw@cache:6380/2' })
  t.equal(fromEnv.redis?.keyPrefix, 'team #1: mcp', 'a value with " #" and ": " survives: interpolation happens after parsing')
  t.throws(() => resolveConfig(yaml, {}), new ConfigError('routes[1].upstream: environment variable OTHER_UPSTREAM is not set and has no default (write ${OTHER_UPSTREAM:-default})'))
})

const portAndLiteral = 'listen:\n  port: ${PORT:-8080}\nredis:\n  url: redis://h:6379\n  keyPrefix: "$${literal}"\nroutes:\n  - path: /mcp\n    upstream: http://u/mcp\n'

t.test('an interpolated port is read as an integer', async (t) => {
  t.equal(resolveConfig(portAndLiteral, { PORT: '9090' }).listen.port, 9090)
})

t.test('$${...} stays literal', async (t) => {
  t.equal(resolveConfig(portAndLiteral, { PORT: '9090' }).redis?.keyPrefix, '${literal}')
})

t.test('redis topologies', async (t) => {
  const cluster = validateConfig({ ...minimal, redis: { cluster: { nodes: ['redis://10.0.0.1:6379', 'rediss://u:p@10.0.0.2:6380'] } } }).redis
  t.same(cluster?.topology, { kind: 'cluster', nodes: ['redis://10.0.0.1:6379', 'rediss://u:p@10.0.0.2:6380'] })
  t.equal(cluster?.waitForReplicas, 0)
  t.equal(validateConfig({ ...minimal, redis: { url: 'redis://a', commandTimeout: '300ms' } }).redis?.commandTimeout, 300, 'a short commandTimeout is fine without waitForReplicas')
  const sentinel = resolveConfig(`
redis:
  sentinel:
    name: mymaster
    sentinels: [10.0.0.5:26379, "[::1]:26380", sentinel-3]
    password: \${REDIS_PASSWORD}
    tls: \${REDIS_TLS:-false}
  waitForReplicas: 1
routes: [{ path: /mcp, upstream: "http://u/mcp" }]
`, { REDIS_PASSWORD: 's3cret' }).redis
  t.same(sentinel?.topology, {
    kind: 'sentinel',
    name: 'mymaster',
    sentinels: [{ host: '10.0.0.5', port: 26379 }, { host: '::1', port: 26380 }, { host: 'sentinel-3', port: 26379 }],
    username: undefined,
    password: 's3cret',
    sentinelUsername: undefined,
    sentinelPassword: undefined,
    db: 0,
    tls: false
  })
  t.equal(sentinel?.waitForReplicas, 1)
  t.equal(sentinel?.waitTimeout, 500)
})

t.test('binding, admin, limits', async (t) => {
  const config = resolveConfig(`
sessions:
  binding:
    jwt:
      jwksUrl: https://issuer.example/.well-known/jwks.json
      issuer: https://issuer.example
      audience: mcp-gateway
  maxPerPrincipal: 5
limits:
  initializePerMinute: 30
admin:
  token: \${MCPGW_ADMIN_TOKEN:-}
shutdownGrace: 10s
listen:
  trustProxy: [10.0.0.0/8]
routes: [{ path: /mcp, upstream: "http://u/mcp" }]
`, {})
  t.same(config.sessions.binding, { kind: 'jwt', jwksUrl: 'https://issuer.example/.well-known/jwks.json', publicKey: undefined, secret: undefined, issuer: 'https://issuer.example', audience: 'mcp-gateway', claim: 'sub', authorizationServers: ['https://issuer.example'], scopesSupported: undefined, requireExp: true })
  t.equal(config.sessions.maxPerPrincipal, 5)
  t.equal(config.limits.initializePerMinute, 30)
  t.equal(config.admin, null, 'an unset admin token means no admin API')
  t.equal(config.shutdownGrace, 10_000)
  t.same(config.listen.trustProxy, ['10.0.0.0/8'])
  t.same(validateConfig({ ...minimal, sessions: { binding: { header: 'X-Api-Key' } } }).sessions.binding, { kind: 'header', header: 'x-api-key' })
  t.same(validateConfig({ ...minimal, admin: { token: 'a-long-enough-admin-token' } }).admin, { token: 'a-long-enough-admin-token' })
})

t.test('security lists and getStream', async (t) => {
  const config = validateConfig({
    security: { allowedOrigins: ['app.example.com', '[::1]', 'chrome-extension://*'], allowedHosts: ['gw.example.com'] },
    routes: [{ path: '/mcp', upstream: 'http://u/mcp', getStream: 'forward' }]
  })
  t.same(config.security, { allowedOrigins: ['app.example.com', '[::1]', 'chrome-extension://*'], corsCredentials: false, allowedHosts: ['gw.example.com'] })
  t.equal(config.routes[0]?.getStream, 'forward')
})

t.test('an explicit 0 survives (port 0 picks a free port)', async (t) => {
  t.equal(validateConfig({ ...minimal, listen: { port: 0 } }).listen.port, 0)
})

t.test('every invalid config names the exact path', async (t) => {
  const route = { path: '/mcp', upstream: 'http://127.0.0.1:3000/mcp' }
  const cases: Array<[string, unknown, RegExp]> = [
    ['not a mapping', ['x'], /^\(document\): must be a mapping/],
    ['unknown top-level key', { ...minimal, sesions: {} }, /^sesions: unknown key/],
    ['unknown nested key', { ...minimal, sessions: { idelTimeout: '1m' } }, /^sessions\.idelTimeout: unknown key/],
    ['routes missing', {}, /^routes: is required/],
    ['routes empty', { routes: [] }, /^routes: must list at least one/],
    ['routes not a list', { routes: { path: '/mcp' } }, /^routes: must be a list/],
    ['route upstream missing', { routes: [route, { path: '/b' }] }, /^routes\[1\]\.upstream: is required/],
    ['bad upstream URL', { routes: [route, { path: '/b', upstream: 'not a url' }] }, /^routes\[1\]\.upstream: must be an absolute URL/],
    ['upstream not http', { routes: [{ path: '/a', upstream: 'ftp://x/mcp' }] }, /^routes\[0\]\.upstream: must use http: or https:/],
    ['route path without slash', { routes: [{ path: 'mcp', upstream: 'http://x/mcp' }] }, /^routes\[0\]\.path: must be a literal URL path/],
    ['route path wildcard', { routes: [{ path: '/mcp/*', upstream: 'http://x/mcp' }] }, /^routes\[0\]\.path: must be a literal URL path/],
    ['route path parameter', { routes: [{ path: '/mcp/:tenant', upstream: 'http://x/mcp' }] }, /^routes\[0\]\.path: must be a literal URL path/],
    ['reserved route path', { routes: [{ path: '/healthz', upstream: 'http://x/mcp' }] }, /^routes\[0\]\.path: \/healthz is reserved/],
    ['duplicate route path', { routes: [route, route] }, /^routes\[1\]\.path: \/mcp is already served by routes\[0\]/],
    ['unknown route key', { routes: [{ ...route, upstreams: 'x' }] }, /^routes\[0\]\.upstreams: unknown key/],
    ['bad duration', { ...minimal, sessions: { idleTimeout: '30' } }, /^sessions\.idleTimeout: must be a duration like 500ms/],
    ['duration as number', { ...minimal, sessions: { maxLifetime: 86400 } }, /^sessions\.maxLifetime: must be a duration/],
    ['zero duration', { ...minimal, sessions: { idleTimeout: '0s' } }, /^sessions\.idleTimeout: must be longer than 0/],
    ['bad route timeout', { routes: [{ ...route, timeout: 'soon' }] }, /^routes\[0\]\.timeout: must be a duration/],
    ['port out of range', { ...minimal, listen: { port: 70000 } }, /^listen\.port: must be between 0 and 65535/],
    ['port wrong type', { ...minimal, listen: { port: 'http' } }, /^listen\.port: must be an integer/],
    ['host wrong type', { ...minimal, listen: { host: 8080 } }, /^listen\.host: must be a non-empty string/],
    ['log level', { ...minimal, log: { level: 'loud' } }, /^log\.level: must be one of/],
    ['redis topology missing', { ...minimal, redis: { keyPrefix: 'x:' } }, /^redis: needs exactly one of url, cluster or sentinel$/],
    ['two redis topologies', { ...minimal, redis: { url: 'redis://a:6379', cluster: { nodes: ['redis://b:6379'] } } }, /^redis: needs exactly one of url, cluster or sentinel, got url and cluster/],
    ['cluster without nodes', { ...minimal, redis: { cluster: {} } }, /^redis\.cluster\.nodes: is required/],
    ['cluster empty nodes', { ...minimal, redis: { cluster: { nodes: [] } } }, /^redis\.cluster\.nodes: must list at least one entry/],
    ['cluster bad node', { ...minimal, redis: { cluster: { nodes: ['redis://a:6379', 'http://b'] } } }, /^redis\.cluster\.nodes\[1\]: must use redis: or rediss:/],
    ['cluster hash-tag prefix', { ...minimal, redis: { cluster: { nodes: ['redis://a:6379'] }, keyPrefix: '{mcp}:' } }, /^redis\.keyPrefix: must not contain \{ or \}/],
    ['sentinel without name', { ...minimal, redis: { sentinel: { sentinels: ['s:26379'] } } }, /^redis\.sentinel\.name: is required/],
    ['sentinel bad address', { ...minimal, redis: { sentinel: { name: 'm', sentinels: ['s:99999'] } } }, /^redis\.sentinel\.sentinels\[0\]: must be host:port/],
    ['sentinel unknown key', { ...minimal, redis: { sentinel: { name: 'm', sentinels: ['s'], pasword: 'x' } } }, /^redis\.sentinel\.pasword: unknown key/],
    ['waitForReplicas negative', { ...minimal, redis: { url: 'redis://a', waitForReplicas: -1 } }, /^redis\.waitForReplicas: must be between 0 and 16/],
    ['waitTimeout not below commandTimeout', { ...minimal, redis: { url: 'redis://a', waitForReplicas: 1, waitTimeout: '2s' } }, /^redis\.waitTimeout: must be shorter than redis\.commandTimeout/],
    ['redis url scheme', { ...minimal, redis: { url: 'http://cache:6379' } }, /^redis\.url: must use redis: or rediss:/],
    ['redis section type', { ...minimal, redis: 'redis://x' }, /^redis: must be a mapping/],
    ['upstreamEra value', { routes: [{ ...route, upstreamEra: 'future' }] }, /^routes\[0\]\.upstreamEra: must be one of auto, legacy, modern/],
    ['maxInputRounds range', { routes: [{ ...route, maxInputRounds: 0 }] }, /^routes\[0\]\.maxInputRounds: must be between 1 and 100/],
    ['inputTimeout shape', { routes: [{ ...route, inputTimeout: 'soon' }] }, /^routes\[0\]\.inputTimeout: must be a duration/],
    ['getStream value', { routes: [{ ...route, getStream: 'yes' }] }, /^routes\[0\]\.getStream: must be one of reject, forward/],
    ['instances without upstreamSessions', { routes: [{ ...route, upstream: ['http://a/mcp', 'http://b/mcp'] }] }, /^routes\[0\]\.upstream: lists several instances: that needs upstreamSessions: true/],
    ['an empty instance list', { routes: [{ ...route, upstream: [] }] }, /^routes\[0\]\.upstream: must list at least one entry/],
    ['a bad instance URL', { routes: [{ ...route, upstream: ['http://a/mcp', 'ftp://b/mcp'], upstreamSessions: true }] }, /^routes\[0\]\.upstream\[1\]: must use http: or https:/],
    ['upstream of another type', { routes: [{ ...route, upstream: 5 }] }, /^routes\[0\]\.upstream: must be an http\(s\):\/\/ URL or a list of them, got a number/],
    ['a stateful modern upstream', { routes: [{ ...route, upstreamSessions: true, upstreamEra: 'modern' }] }, /^routes\[0\]\.upstreamEra: cannot be modern with upstreamSessions: true/],
    ['balance value', { routes: [{ ...route, upstreamSessions: true, balance: 'random' }] }, /^routes\[0\]\.balance: must be one of leastSessions, roundRobin/],
    ['the same instance twice', { routes: [{ ...route, upstream: ['http://a/mcp', 'http://user:secret@a/mcp?x=1'], upstreamSessions: true }] }, /^routes\[0\]\.upstream\[1\]: names the same instance as an earlier entry \(http:\/\/a\/mcp\)/],
    ['one instance spelt two ways', { routes: [{ ...route, upstream: ['http://a/mcp', 'http://A:80/m%63p'], upstreamSessions: true }] }, /^routes\[0\]\.upstream\[1\]: names the same instance as an earlier entry/],
    ['a health check too often', { routes: [{ ...route, upstreamSessions: true, healthCheck: { interval: '500ms' } }] }, /^routes\[0\]\.healthCheck\.interval: must be at least 1s/],
    ['balance without upstreamSessions', { routes: [{ ...route, balance: 'roundRobin' }] }, /^routes\[0\]\.balance: only applies with upstreamSessions: true/],
    ['retryToolCalls without upstreamSessions', { routes: [{ ...route, retryToolCalls: true }] }, /^routes\[0\]\.retryToolCalls: only applies with upstreamSessions: true/],
    ['healthCheck without upstreamSessions', { routes: [{ ...route, healthCheck: { interval: '5s' } }] }, /^routes\[0\]\.healthCheck: only applies with upstreamSessions: true/],
    ['healthCheck interval', { routes: [{ ...route, upstreamSessions: true, healthCheck: { interval: 'often' } }] }, /^routes\[0\]\.healthCheck\.interval: must be a duration/],
    ['allowedOrigins type', { ...minimal, security: { allowedOrigins: 'localhost' } }, /^security\.allowedOrigins: must be a list of strings/],
    ['allowedOrigins with a path', { ...minimal, security: { allowedOrigins: ['https://app.example.com/app'] } }, /^security\.allowedOrigins\[0\]: must be an origin \(scheme:\/\/host\[:port\], no path\)/],
    ['allowedHosts with port', { ...minimal, security: { allowedHosts: ['gw.example.com:8080'] } }, /^security\.allowedHosts\[0\]: must be a hostname without scheme or port/],
    ['allowedHosts wildcard scheme', { ...minimal, security: { allowedHosts: ['chrome-extension://*'] } }, /^security\.allowedHosts\[0\]/],
    ['unknown security key', { ...minimal, security: { allowOrigins: [] } }, /^security\.allowOrigins: unknown key/],
    ['binding with both', { ...minimal, sessions: { binding: { header: 'authorization', jwt: { secret: 'x' } } } }, /^sessions\.binding: needs exactly one of header or jwt/],
    ['binding header name', { ...minimal, sessions: { binding: { header: 'bad header' } } }, /^sessions\.binding\.header: must be an HTTP header name/],
    ['jwt without key source', { ...minimal, sessions: { binding: { jwt: { issuer: 'i' } } } }, /^sessions\.binding\.jwt: needs exactly one of jwksUrl, publicKey or secret/],
    ['jwt two key sources', { ...minimal, sessions: { binding: { jwt: { jwksUrl: 'https://i/jwks', secret: 'x'.repeat(32) } } } }, /^sessions\.binding\.jwt: needs exactly one of jwksUrl, publicKey or secret, got jwksUrl and secret/],
    ['jwt short secret', { ...minimal, sessions: { binding: { jwt: { secret: 'short' } } } }, /^sessions\.binding\.jwt\.secret: must be at least 32 bytes/],
    ['jwt bad public key', { ...minimal, sessions: { binding: { jwt: { publicKey: 'abc' } } } }, /^sessions\.binding\.jwt\.publicKey: must be a PEM public key/],
    ['jwt bad jwksUrl', { ...minimal, sessions: { binding: { jwt: { jwksUrl: 'nope' } } } }, /^sessions\.binding\.jwt\.jwksUrl: must be an absolute URL/],
    ['maxPerPrincipal type', { ...minimal, sessions: { maxPerPrincipal: 'many' } }, /^sessions\.maxPerPrincipal: must be an integer/],
    ['initializePerMinute negative', { ...minimal, limits: { initializePerMinute: -1 } }, /^limits\.initializePerMinute: must be between 0/],
    ['admin token too short', { ...minimal, admin: { token: 'short' } }, /^admin\.token: must be at least 16 characters/],
    ['admin unknown key', { ...minimal, admin: { tokn: 'x' } }, /^admin\.tokn: unknown key/],
    ['shutdownGrace', { ...minimal, shutdownGrace: 30 }, /^shutdownGrace: must be a duration/],
    ['admin route path', { routes: [{ path: '/admin/x', upstream: 'http://x/mcp' }] }, /^routes\[0\]\.path: \/admin\/x is reserved/],
    ['trustProxy type', { ...minimal, listen: { trustProxy: 'maybe' } }, /^listen\.trustProxy: must be true or false/],
    ['metrics path', { ...minimal, metrics: { path: 'metrics' } }, /^metrics\.path: must start with "\/"/],
    ['metrics path clash', { routes: [{ path: '/stats', upstream: 'http://x/mcp' }], metrics: { path: '/stats' } }, /^routes\[0\]\.path: \/stats is served by metrics\.path/],
    ['tracing endpoint', { ...minimal, tracing: { otlpEndpoint: 'collector:4318' } }, /^tracing\.otlpEndpoint: must/],
    ['tracing ratio', { ...minimal, tracing: { otlpEndpoint: 'http://c:4318/v1/traces', sampleRatio: 2 } }, /^tracing\.sampleRatio: must be a number from 0 to 1/],
    ['body limit type', { ...minimal, limits: { maxBodyBytes: '4MiB' } }, /^limits\.maxBodyBytes: must be an integer/]
  ]
  for (const [name, raw, message] of cases) {
    t.throws(() => validateConfig(raw), { name: 'ConfigError', code: 'MCPGW_CONFIG_INVALID', message }, name)
  }
})

t.test('a broken Redis URL is reported without its password', async (t) => {
  let message = ''
  try {
    validateConfig({ ...minimal, redis: { url: 'redis://user:s3cret@ bad host' } })
  } catch (error) {
    message = (error as Error).message
  }
  t.match(message, /^redis\.url: must be an absolute URL/)
  t.notMatch(message, /s3cret/)
})

t.test('YAML errors and duplicate keys stop start-up', async (t) => {
  t.throws(() => resolveConfig('routes: [', {}), { name: 'ConfigError', message: /^invalid YAML/ })
  t.throws(() => resolveConfig('listen:\n  port: 1\nlisten:\n  port: 2\n', {}), { name: 'ConfigError', message: /^invalid YAML/ })
})

t.test('loadConfig reads a file and names it in errors', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-config-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const good = join(dir, 'good.yaml')
  await writeFile(good, 'routes:\n  - path: /mcp\n    upstream: http://127.0.0.1:3000/mcp\n')
  t.equal((await loadConfig(good, {})).routes[0]?.path, '/mcp')
  const bad = join(dir, 'bad.yaml')
  await writeFile(bad, 'routes:\n  - path: /mcp\n    upstream: nope\n')
  await t.rejects(loadConfig(bad, {}), { name: 'ConfigError', message: `${bad}: routes[0].upstream: must be an absolute URL, got "nope"` })
  await t.rejects(loadConfig(join(dir, 'missing.yaml'), {}), { name: 'ConfigError', message: /cannot read config file .*missing\.yaml: ENOENT/ })
})

t.test('the shipped config files are valid', async (t) => {
  const shipped = await loadConfig('config/gateway.yaml', {})
  t.equal(shipped.routes.length > 0, true)
  t.not(shipped.redis, null, 'gateway.yaml uses Redis')
  const demo = await loadConfig('config/demo.yaml', {})
  t.equal(demo.redis, null, 'demo.yaml keeps sessions in memory')
})

t.test('stateful upstreams: a list of instances, placement, retries and health checks', async (t) => {
  const [route] = validateConfig({ routes: [{ path: '/mcp', upstream: ['http://a:3000/mcp', 'http://b:3000/mcp'], upstreamSessions: true, balance: 'roundRobin', retryToolCalls: 'true', healthCheck: { interval: '2s' } }] }).routes
  t.match(route, { upstream: 'http://a:3000/mcp', instances: ['http://a:3000/mcp', 'http://b:3000/mcp'], upstreamSessions: true, balance: 'roundRobin', retryToolCalls: true, healthCheck: { interval: 2_000 } })
  t.same(validateConfig({ routes: [{ path: '/mcp', upstream: ['http://a/mcp'] }] }).routes[0]?.instances, ['http://a/mcp'], 'a list of one needs no upstreamSessions')
  t.same(validateConfig({ routes: [{ path: '/mcp', upstream: 'http://a/mcp', upstreamSessions: true, healthCheck: {} }] }).routes[0]?.healthCheck, { interval: 10_000, failureThreshold: 3 }, 'an empty healthCheck checks every 10s and gives up after 3 failures in a row')
  t.equal(route?.getStream, 'forward', 'a stateful server pushes on its GET stream: forwarded unless the route says otherwise')
  t.equal(validateConfig({ routes: [{ path: '/mcp', upstream: 'http://a/mcp', upstreamSessions: true, getStream: 'reject' }] }).routes[0]?.getStream, 'reject')
})

t.test('streams: 0 turns keepAlive and maxConnectionTime off; polling needs resumable streams', async (t) => {
  const streams = validateConfig({ ...minimal, streams: { keepAlive: 0, maxConnectionTime: '0', retention: '90s' } }).streams
  t.match(streams, { resumable: true, retention: 90_000, maxEvents: DEFAULT_STREAMS_MAX_EVENTS, keepAlive: 0, maxConnectionTime: 0 })
  t.equal(validateConfig({ ...minimal, streams: { maxConnectionTime: '60s' } }).streams.maxConnectionTime, 60_000)
  t.throws(() => validateConfig({ ...minimal, streams: { resumable: false, maxConnectionTime: '60s' } }), /streams\.maxConnectionTime: needs streams\.resumable: true/)
  t.throws(() => validateConfig({ ...minimal, streams: { keepAlive: 'soon' } }), /streams\.keepAlive: must be 0 \(off\) or a duration/)
  t.throws(() => validateConfig({ ...minimal, streams: { keepAlive: -1 } }), /streams\.keepAlive/)
  t.throws(() => validateConfig({ ...minimal, streams: { maxEvents: 0 } }), /streams\.maxEvents/)
})

t.test('streams: limits on what is kept and on calls nobody reads; 0 bytes means no byte limit', async (t) => {
  const streams = validateConfig({ ...minimal, streams: { maxBytesPerStream: 0, maxBytesPerSession: '1048576', maxAbandonedPerSession: 2, maxAbandonedPerPrincipal: 5, maxAbandoned: 100 } }).streams
  t.match(streams, { maxBytesPerStream: 0, maxBytesPerSession: 1_048_576, maxAbandonedPerSession: 2, maxAbandonedPerPrincipal: 5, maxAbandoned: 100 })
  t.throws(() => validateConfig({ ...minimal, streams: { maxAbandonedPerSession: 0 } }), /streams\.maxAbandonedPerSession: must be between 1/, 'a call whose client left always may run on once')
  t.throws(() => validateConfig({ ...minimal, streams: { maxBytesPerSession: -1 } }), /streams\.maxBytesPerSession/)
})
