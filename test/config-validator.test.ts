import t from 'tap'
import { resolveConfig } from '../src/config/load-config.js'
import { DEFAULT_TRACING_SAMPLE_RATIO, formatConfigPath, validateConfig, type GatewayConfig } from '../src/config/validate-config.js'
import { formatDuration, parseDuration } from '../src/config/duration.js'

const minimal = { routes: [{ path: '/mcp', upstream: 'http://127.0.0.1:3000/mcp' }] }
const tracing = (sampleRatio: unknown): unknown => ({ ...minimal, tracing: { otlpEndpoint: 'http://c:4318/v1/traces', sampleRatio } })
const healthCheck = (check: unknown): unknown => ({ routes: [{ ...minimal.routes[0], upstreamSessions: true, healthCheck: check }] })

t.test('strings that spell a number or a boolean are read as one, wherever one is expected', async (t) => {
  const cases: Array<[string, unknown, (config: GatewayConfig) => unknown, unknown]> = [
    ['listen.port', { ...minimal, listen: { port: '9090' } }, (c) => c.listen.port, 9090],
    ['listen.trustProxy', { ...minimal, listen: { trustProxy: 'true' } }, (c) => c.listen.trustProxy, true],
    ['metrics.enabled', { ...minimal, metrics: { enabled: 'false' } }, (c) => c.metrics.enabled, false],
    ['metrics.port', { ...minimal, metrics: { port: '9464' } }, (c) => c.metrics.port, 9464],
    ['limits.maxBodyBytes', { ...minimal, limits: { maxBodyBytes: '1024' } }, (c) => c.limits.maxBodyBytes, 1024],
    ['limits.initializePerMinute 0', { ...minimal, limits: { initializePerMinute: '0' } }, (c) => c.limits.initializePerMinute, 0],
    ['sessions.maxPerPrincipal', { ...minimal, sessions: { maxPerPrincipal: '0' } }, (c) => c.sessions.maxPerPrincipal, 0],
    ['redis.waitForReplicas', { ...minimal, redis: { url: 'redis://a', waitForReplicas: '1' } }, (c) => c.redis?.waitForReplicas, 1],
    ['routes[0].maxInputRounds', { routes: [{ ...minimal.routes[0], maxInputRounds: '3' }] }, (c) => c.routes[0]?.maxInputRounds, 3],
    ['routes[0].initializeTimeout', { routes: [{ ...minimal.routes[0], initializeTimeout: '5s' }] }, (c) => c.routes[0]?.initializeTimeout, 5000],
    ['limits.maxResponseBytes', { ...minimal, limits: { maxResponseBytes: '65536' } }, (c) => c.limits.maxResponseBytes, 65536],
    ['limits.maxClientStateBytes default', minimal, (c) => c.limits.maxClientStateBytes, 8192],
    ['limits.maxSubscriptionsPerSession default', minimal, (c) => c.limits.maxSubscriptionsPerSession, 64],
    ['sessions.maxPerPrincipalPolicy default', minimal, (c) => c.sessions.maxPerPrincipalPolicy, 'refuse'],
    ['security.allowedOrigins in every form', { ...minimal, security: { allowedOrigins: ['https://app.example.com:8443', 'web.example.com', 'chrome-extension://*'] } }, (c) => c.security.allowedOrigins?.length, 3],
    ['security.corsCredentials default off', minimal, (c) => c.security.corsCredentials, false],
    ['redis.url with a database number', { ...minimal, redis: { url: 'redis://127.0.0.1:6379/3' } }, (c) => c.redis?.topology.kind, 'standalone'],
    ['tracing.sampleRatio 0.5', tracing('0.5'), (c) => c.tracing?.sampleRatio, 0.5],
    ['tracing.sampleRatio .25', tracing('.25'), (c) => c.tracing?.sampleRatio, 0.25],
    ['tracing.sampleRatio 0', tracing('0'), (c) => c.tracing?.sampleRatio, 0],
    ['tracing.sampleRatio number', tracing(0.1), (c) => c.tracing?.sampleRatio, 0.1],
    ['tracing.sampleRatio default', tracing(undefined), (c) => c.tracing?.sampleRatio, DEFAULT_TRACING_SAMPLE_RATIO],
    ['routes[0].healthCheck.failureThreshold default', healthCheck({ interval: '1s' }), (c) => c.routes[0]?.healthCheck?.failureThreshold, 3],
    ['routes[0].healthCheck.interval default', healthCheck({ failureThreshold: 5 }), (c) => c.routes[0]?.healthCheck?.interval, 10_000],
    ['routes[0].healthCheck.failureThreshold as text', healthCheck({ failureThreshold: '5' }), (c) => c.routes[0]?.healthCheck?.failureThreshold, 5],
    ['routes[0].healthCheck.failureThreshold 1', healthCheck({ failureThreshold: 1 }), (c) => c.routes[0]?.healthCheck?.failureThreshold, 1]
  ]
  for (const [name, raw, read, expected] of cases) t.equal(read(validateConfig(raw)), expected, name)
})

t.test('${RATIO:-0.5} works for tracing.sampleRatio, from the default and from the environment', async (t) => {
  const yaml = 'tracing:\n  otlpEndpoint: http://c:4318/v1/traces\n  sampleRatio: ${RATIO:-0.5}\nlisten:\n  trustProxy: ${TRUST:-false}\nroutes: [{ path: /mcp, upstream: "http://u/mcp" }]\n'
  t.equal(resolveConfig(yaml, {}).tracing?.sampleRatio, 0.5)
  t.equal(resolveConfig(yaml, { RATIO: '0.01' }).tracing?.sampleRatio, 0.01)
  t.equal(resolveConfig(yaml, { TRUST: 'true' }).listen.trustProxy, true)
  t.throws(() => resolveConfig(yaml, { RATIO: 'half' }), { message: 'tracing.sampleRatio: must be a number from 0 to 1, got string "half"' })
})

t.test('strings that do not spell the expected value are refused with the exact path', async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ['ratio above 1 as text', tracing('1.5'), 'tracing.sampleRatio: must be a number from 0 to 1, got number 1.5'],
    ['ratio negative', tracing(-0.1), 'tracing.sampleRatio: must be a number from 0 to 1, got number -0.1'],
    ['ratio as word', tracing('all'), 'tracing.sampleRatio: must be a number from 0 to 1, got string "all"'],
    ['port with a sign', { ...minimal, listen: { port: '+80' } }, 'listen.port: must be an integer, got string "+80"'],
    ['port as decimal', { ...minimal, listen: { port: 80.5 } }, 'listen.port: must be an integer, got number 80.5'],
    ['port out of range as text', { ...minimal, listen: { port: '70000' } }, 'listen.port: must be between 0 and 65535, got 70000'],
    ['boolean as yes', { ...minimal, metrics: { enabled: 'yes' } }, 'metrics.enabled: must be true or false, got string "yes"'],
    ['boolean as 1', { ...minimal, redis: { sentinel: { name: 'm', sentinels: ['s'], tls: 1 } } }, 'redis.sentinel.tls: must be true or false, got number 1'],
    ['duration as number', { ...minimal, shutdownGrace: 0 }, 'shutdownGrace: must be a duration like 500ms, 90s, 30m or 24h, got number 0'],
    ['duration overflow', { ...minimal, shutdownGrace: '99999999999999999h' }, 'shutdownGrace: must be a duration like 500ms, 90s, 30m or 24h, got string "99999999999999999h"'],
    ['unknown key deep in a list', { routes: [minimal.routes[0], { ...minimal.routes[0], path: '/b', tiemout: '1s' }] }, 'routes[1].tiemout: unknown key (allowed here: path, upstream, upstreamSessions, balance, retryToolCalls, healthCheck, timeout, getStream, passCookies, upstreamEra, initializeTimeout, inputTimeout, maxInputRounds)'],
    ['sentinel list empty', { ...minimal, redis: { sentinel: { name: 'm', sentinels: [] } } }, 'redis.sentinel.sentinels: must list at least one entry'],
    ['admin section not a mapping', { ...minimal, admin: 'x' }, 'admin: must be a mapping, got string "x"'],
    ['route not a mapping', { routes: ['/mcp'] }, 'routes[0]: must be a mapping, got string "/mcp"'],
    ['empty document', null, 'routes: is required: list at least one { path, upstream }'],
    ['metrics on a health path', { ...minimal, metrics: { path: '/healthz' } }, 'metrics.path: /healthz is served by the gateway itself; choose another path'],
    ['metrics under the admin API', { ...minimal, metrics: { path: '/admin/metrics' } }, 'metrics.path: /admin/metrics is served by the gateway itself; choose another path'],
    ['redis database that is not a number', { ...minimal, redis: { url: 'redis://127.0.0.1:6379/sessions' } }, 'redis.url: the path names the database and must be /<number> (e.g. /0), got "/sessions"'],
    ['an origin with a path', { ...minimal, security: { allowedOrigins: ['https://app.example.com/app'] } }, 'security.allowedOrigins[0]: must be an origin (scheme://host[:port], no path), a hostname or scheme://* (e.g. https://app.example.com:8443, app.example.com, [::1] or chrome-extension://*), got "https://app.example.com/app"'],
    ['a host with a scheme', { ...minimal, security: { allowedHosts: ['https://app.example.com'] } }, 'security.allowedHosts[0]: must be a hostname without scheme or port (e.g. app.example.com or [::1]), got "https://app.example.com"'],
    ['health check failure threshold 0', healthCheck({ failureThreshold: 0 }), 'routes[0].healthCheck.failureThreshold: must be between 1 and 100, got 0'],
    ['health check with an unknown key', healthCheck({ failures: 3 }), 'routes[0].healthCheck.failures: unknown key (allowed here: interval, failureThreshold)'],
    ['max-per-principal policy unknown', { ...minimal, sessions: { maxPerPrincipalPolicy: 'evict' } }, 'sessions.maxPerPrincipalPolicy: must be one of refuse, evictOldest, got string "evict"']
  ]
  for (const [name, raw, message] of cases) t.throws(() => validateConfig(raw), { name: 'ConfigError', code: 'MCPGW_CONFIG_INVALID', message }, name)
})

t.test('an explicit 0 or false survives, and sections written empty get every default', async (t) => {
  const config = validateConfig({ ...minimal, listen: { port: 0, trustProxy: false }, limits: { initializePerMinute: 0 }, metrics: { enabled: false, port: 0 }, security: null, log: null })
  t.equal(config.listen.port, 0)
  t.equal(config.metrics.enabled, false)
  t.equal(config.metrics.port, 0)
  t.same(config.security, { allowedOrigins: null, corsCredentials: false, allowedHosts: null })
  t.same(config.log, { level: 'info' })
  t.equal(validateConfig({ ...minimal, listen: { host: '0.0.0.0' } }).metrics.host, '0.0.0.0', 'metrics.host follows listen.host')
  t.equal(validateConfig({ ...minimal, tracing: { otlpEndpoint: '' } }).tracing, null, 'an empty endpoint means no tracing')
})

t.test('a config error never prints a secret value', async (t) => {
  const secret = 'hunter2-very-secret-value'
  const cases: Array<[string, unknown]> = [
    ['redis URL that does not parse', { ...minimal, redis: { url: `redis://user:${secret}@ bad host` } }],
    ['redis URL with a / in the password', { ...minimal, redis: { url: `redis://user:a/${secret}@ bad host` } }],
    ['cluster node', { ...minimal, redis: { cluster: { nodes: [`rediss://u:${secret}@ x y`] } } }],
    ['upstream URL', { routes: [{ path: '/mcp', upstream: `http://u:${secret}@ bad` }] }],
    ['tracing endpoint', { ...minimal, tracing: { otlpEndpoint: `https://u:${secret}@ bad` } }],
    ['sentinel password of the wrong type', { ...minimal, redis: { sentinel: { name: 'm', sentinels: ['s'], password: [secret] } } }],
    ['sentinel password empty', { ...minimal, redis: { sentinel: { name: 'm', sentinels: ['s'], sentinelPassword: '' } } }],
    ['admin token too short', { ...minimal, admin: { token: 'hunter2' } }],
    ['admin token of the wrong type', { ...minimal, admin: { token: 12345678901234567 } }],
    ['jwt secret too short', { ...minimal, sessions: { binding: { jwt: { secret: 'hunter2' } } } }],
    ['jwt secret of the wrong type', { ...minimal, sessions: { binding: { jwt: { secret: 1234567 } } } }],
    ['URL of the wrong protocol', { ...minimal, redis: { url: `http://user:${secret}@cache:6379` } }]
  ]
  for (const [name, raw] of cases) {
    let message = ''
    try {
      validateConfig(raw)
    } catch (error) {
      message = (error as Error).message
    }
    t.not(message, '', `${name}: refused`)
    t.notMatch(message, /hunter2|1234567/, `${name}: ${message}`)
  }
})

t.test('a broken YAML line is reported in one line, without the line itself', async (t) => {
  let message = ''
  try {
    resolveConfig('admin:\n  token: "hunter2-secret\nroutes: []\n', {})
  } catch (error) {
    message = (error as Error).message
  }
  t.match(message, /^invalid YAML: [^\n]+$/)
  t.notMatch(message, /hunter2/)
})

t.test('paths and durations are formatted the way operators read them', async (t) => {
  const paths: Array<[PropertyKey[], string]> = [[[], '(document)'], [['routes', 1, 'upstream'], 'routes[1].upstream'], [['redis', 'cluster', 'nodes', 0], 'redis.cluster.nodes[0]']]
  for (const [path, text] of paths) t.equal(formatConfigPath(path), text)
  for (const milliseconds of [1, 500, 1000, 90_000, 1_800_000, 86_400_000, 1500]) t.equal(parseDuration(formatDuration(milliseconds)), milliseconds, formatDuration(milliseconds))
})
