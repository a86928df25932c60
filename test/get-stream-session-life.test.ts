import t from 'tap'
import type { ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import { LATEST_LEGACY_VERSION, openSession, post } from './helpers/mcp-http.js'
import { legacyAnswers, withScriptedUpstream, type ScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * A standalone GET stream lives as long as its session (docs/operating.md, "Streams and session
 * ends"): while it is open it counts as activity, so the idle timeout does not end a session whose
 * client only listens; and sessions.maxLifetime ends the stream at the session's deadline, after
 * which the session is gone (404, MCP 2025-11-25, Basic › Transports › Session Management).
 */

const legacyHeaders = { 'mcp-protocol-version': LATEST_LEGACY_VERSION }

/** A legacy upstream that holds every GET open as an SSE stream, as a server with something to push does. */
async function withStreamingUpstream (t: Teardown): Promise<{ upstream: ScriptedUpstream, streams: ServerResponse[] }> {
  const streams: ServerResponse[] = []
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.method !== 'GET') {
      legacyAnswers(exchange)
      return
    }
    exchange.response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    exchange.response.write(': stream open\n\n')
    streams.push(exchange.response)
  })
  return { upstream, streams }
}

async function openStream (url: string, sessionId: string, signal: AbortSignal): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const response = await fetch(url, { headers: { ...legacyHeaders, accept: 'text/event-stream', 'mcp-session-id': sessionId }, signal })
  if (response.status !== 200) throw new Error(`GET stream: HTTP ${response.status} ${await response.text()}`)
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  await reader.read()
  return reader
}

const ping = (id: number): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'ping' })

t.test('an open GET stream keeps its session alive past the idle timeout', async (t) => {
  const redis = await withRedis(t)
  const { upstream, streams } = await withStreamingUpstream(t)
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'stream-idle:' },
      sessions: { idleTimeout: '2s' },
      routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy', getStream: 'forward' }]
    }
  })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSession(url)
  const closeStream = new AbortController()
  t.teardown(() => { closeStream.abort() })
  const reader = await openStream(url, sessionId, closeStream.signal)
  t.teardown(() => reader.cancel().catch(() => undefined))
  t.equal(streams.length, 1, 'the upstream holds the stream')

  // The behaviour is the passing of time: no request but the open stream for more than two idle timeouts.
  await sleep(4_500)
  t.equal((await post(url, ping(2), sessionId, legacyHeaders)).status, 200, 'the session still answers after 2 x idleTimeout')
  t.notOk(streams[0]?.writableEnded || streams[0]?.destroyed, 'and the stream is still open upstream')
})

t.test('sessions.maxLifetime ends the stream at the deadline; the session then answers 404', async (t) => {
  const redis = await withRedis(t)
  const { upstream, streams } = await withStreamingUpstream(t)
  const gateway = await withGateway(t, {
    config: {
      redis: { url: redis.url, keyPrefix: 'stream-lifetime:' },
      sessions: { idleTimeout: '2s', maxLifetime: '3s' },
      routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy', getStream: 'forward' }]
    }
  })
  const url = `${gateway.origin}/mcp`
  const created = performance.now()
  const sessionId = await openSession(url)
  const reader = await openStream(url, sessionId, AbortSignal.timeout(15_000))
  let ended = false
  const streamEnd = (async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // Cut by the gateway: ended all the same.
    }
    ended = true
    return (performance.now() - created) / 1000
  })()
  const seconds = await eventually(async () => ended && await streamEnd, { timeout: 10_000, description: 'the stream to end at the session\'s lifetime' })
  t.ok(seconds >= 2.5 && seconds < 8, `the stream ended ${seconds.toFixed(1)} s after the session began`)
  t.equal((await post(url, ping(2), sessionId, legacyHeaders)).status, 404, 'the session is gone')
  await eventually(() => streams[0]?.destroyed === true || streams[0]?.writableEnded === true, { timeout: 5_000, description: 'the upstream stream to close' })
})
