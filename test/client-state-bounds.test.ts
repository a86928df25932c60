import t from 'tap'
import { MAX_SUBSCRIPTION_URI_BYTES } from '../src/mcp/session-settings.js'
import { DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION } from '../src/config/validate-config.js'
import { withGateway, withRedis } from './helpers/fixtures.js'
import { initializeRequest, LATEST_LEGACY_VERSION, post } from './helpers/mcp-http.js'
import { modernAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * What a session keeps of its client is bounded, so that one session costs a bounded amount of Redis
 * whatever the client sends (docs/era-bridge.md; docs/configuration.md, limits.maxClientStateBytes
 * and limits.maxSubscriptionsPerSession): an initialize whose clientInfo and capabilities serialize
 * to more than 8 KiB is refused (400, -32602) and mints nothing; a bridged session holds at most
 * limits.maxSubscriptionsPerSession subscriptions and MAX_SUBSCRIPTION_URI_BYTES of subscribed URIs;
 * the largest such session stays within 16 KiB of Redis.
 */

const MAX_CLIENT_STATE_BYTES = 8 * 1024
const MAX_SUBSCRIPTIONS = DEFAULT_MAX_SUBSCRIPTIONS_PER_SESSION
const MAX_SESSION_MEMORY_BYTES = 16 * 1024
const clientInfo = { name: 'gateway-test', version: '1.0.0' }

/** An initialize whose clientInfo + capabilities serialize to exactly `bytes`. */
function initializeOfStateSize (bytes: number, id = 1): Record<string, unknown> {
  const empty = Buffer.byteLength(JSON.stringify(clientInfo)) + Buffer.byteLength(JSON.stringify({ experimental: { pad: '' } }))
  const capabilities = { experimental: { pad: 'x'.repeat(bytes - empty) } }
  const request = initializeRequest(id)
  return { ...request, params: { ...(request.params as Record<string, unknown>), clientInfo, capabilities } }
}

/** A URI of exactly `bytes` bytes, distinct per `index`. */
function uriOf (index: number, bytes: number): string {
  const prefix = `demo://r/${index}/`
  return prefix + 'u'.repeat(bytes - prefix.length)
}

const legacyHeaders = { 'mcp-protocol-version': LATEST_LEGACY_VERSION }

t.test('an initialize with more than 8 KiB of client state: 400, -32602, no session, nothing stored', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'state-refused:' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const answer = await post(`${gateway.origin}/mcp`, initializeOfStateSize(MAX_CLIENT_STATE_BYTES + 1))
  t.equal(answer.status, 400)
  t.match(JSON.parse(answer.text), { jsonrpc: '2.0', id: 1, error: { code: -32602, message: /maxClientStateBytes/ } })
  t.equal(answer.headers.get('mcp-session-id'), null, 'no session id')
  t.same(await redis.client().keys('state-refused:*'), [], 'nothing in Redis')
  t.equal(upstream.received.length, 0, 'nothing forwarded')

  const largest = await post(`${gateway.origin}/mcp`, initializeOfStateSize(MAX_CLIENT_STATE_BYTES, 2))
  t.equal(largest.status, 200, 'exactly 8 KiB is accepted')
  t.type(largest.headers.get('mcp-session-id'), 'string')
})

t.test('one subscription over the limit is refused; the largest session stays within 16 KiB of Redis', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withScriptedUpstream(t, modernAnswers)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'state-largest:' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  const initialized = await post(url, initializeOfStateSize(MAX_CLIENT_STATE_BYTES))
  t.equal(initialized.status, 200, 'the biggest accepted client state')
  const sessionId = initialized.headers.get('mcp-session-id') as string

  // Every subscription as long as the URI budget allows for all of them: both bounds reached at once.
  const uriBytes = Math.floor(MAX_SUBSCRIPTION_URI_BYTES / MAX_SUBSCRIPTIONS)
  let accepted = 0
  let refusal: unknown
  for (let index = 0; index < MAX_SUBSCRIPTIONS + 10 && refusal === undefined; index++) {
    const answer = await post(url, { jsonrpc: '2.0', id: 100 + index, method: 'resources/subscribe', params: { uri: uriOf(index, uriBytes) } }, sessionId, legacyHeaders)
    const message = JSON.parse(answer.text) as { result?: unknown, error?: unknown }
    if (message.error !== undefined) refusal = message
    else accepted++
  }
  t.equal(accepted, MAX_SUBSCRIPTIONS, 'the limit\'s number of subscriptions accepted')
  t.match(refusal, { jsonrpc: '2.0', id: 100 + MAX_SUBSCRIPTIONS, error: { code: -32602, message: /maxSubscriptionsPerSession/ } }, 'one more is -32602')
  const again = await post(url, { jsonrpc: '2.0', id: 99, method: 'resources/subscribe', params: { uri: uriOf(0, uriBytes) } }, sessionId, legacyHeaders)
  t.match(JSON.parse(again.text), { id: 99, result: {} }, 'subscribing again to a held URI is no new subscription')

  const keys = await redis.client().keys('state-largest:*')
  t.ok(keys.length > 0, 'the session is stored')
  let bytes = 0
  for (const key of keys) bytes += Number(await redis.client().call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
  t.ok(bytes <= MAX_SESSION_MEMORY_BYTES, `the session's keys take ${bytes} bytes of Redis (at most ${MAX_SESSION_MEMORY_BYTES})`)
})

t.test('a subscription past the URI byte budget is refused', async (t) => {
  const upstream = await withScriptedUpstream(t, modernAnswers)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = (await post(url, initializeRequest())).headers.get('mcp-session-id') as string
  const kibibytes = MAX_SUBSCRIPTION_URI_BYTES / 1024
  for (let index = 0; index < kibibytes; index++) {
    const answer = await post(url, { jsonrpc: '2.0', id: index, method: 'resources/subscribe', params: { uri: uriOf(index, 1024) } }, sessionId, legacyHeaders)
    t.match(JSON.parse(answer.text), { id: index, result: {} }, `${index + 1} KiB of URIs`)
  }
  const over = await post(url, { jsonrpc: '2.0', id: kibibytes, method: 'resources/subscribe', params: { uri: 'demo://one-more' } }, sessionId, legacyHeaders)
  t.match(JSON.parse(over.text), { id: kibibytes, error: { code: -32602, message: /bytes/ } }, 'one byte more is -32602')
  const unsubscribed = await post(url, { jsonrpc: '2.0', id: 8, method: 'resources/unsubscribe', params: { uri: uriOf(0, 1024) } }, sessionId, legacyHeaders)
  t.match(JSON.parse(unsubscribed.text), { id: 8, result: {} })
  const fits = await post(url, { jsonrpc: '2.0', id: 9, method: 'resources/subscribe', params: { uri: 'demo://one-more' } }, sessionId, legacyHeaders)
  t.match(JSON.parse(fits.text), { id: 9, result: {} }, 'after an unsubscribe it fits')
})
