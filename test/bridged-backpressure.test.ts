import t from 'tap'
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { eventually } from './helpers/eventually.js'
import { withGateway } from './helpers/fixtures.js'
import { initializeRequest, LATEST_LEGACY_VERSION, post } from './helpers/mcp-http.js'
import { modernAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * A bridged stream is paced by its reader (docs/era-bridge.md): the gateway reads the next upstream
 * message only once the previous one has left for the client, so a client that reads nothing holds
 * the upstream back (TCP flow control all the way) instead of growing the gateway's memory.
 */

const MIB = 1024 * 1024
const NOTIFICATIONS = 200
const MOST_BUFFERED = 24 * MIB

interface UpstreamStream {
  written: number
  finished: boolean
  closed: boolean
  response?: ServerResponse
}

/** Writes `count` notifications of 1 MiB, each only when the previous one was taken (respecting drain). */
function streamNotifications (response: ServerResponse, id: unknown, state: UpstreamStream): void {
  state.response = response
  response.once('close', () => { state.closed = true })
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  const data = 'x'.repeat(MIB)
  let sent = 0
  const writeMore = (): void => {
    while (sent < NOTIFICATIONS) {
      if (response.destroyed) return
      const event = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data } })}\n\n`
      sent++
      state.written += Buffer.byteLength(event)
      if (!response.write(event)) {
        response.once('drain', writeMore)
        return
      }
    }
    response.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { resultType: 'complete', content: [] } })}\n\n`)
    state.finished = true
  }
  writeMore()
}

t.test('a client that reads nothing holds the upstream back', async (t) => {
  const state: UpstreamStream = { written: 0, finished: false, closed: false }
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method === 'tools/call') streamNotifications(exchange.response, exchange.message.id, state)
    else modernAnswers(exchange)
  })
  // Not resumable: a client that leaves then ends the upstream request at once (resumable streams
  // read on and keep the events for a resume: test/resumable-streams.test.ts).
  const gateway = await withGateway(t, { config: { streams: { resumable: false }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = (await post(url, initializeRequest())).headers.get('mcp-session-id') as string

  const body = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flood', arguments: {} } })
  const outgoing = httpRequest(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION }
  })
  t.teardown(() => { outgoing.destroy() })
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    outgoing.once('response', resolve)
    outgoing.once('error', reject)
    outgoing.end(body)
  })
  // Read nothing: the response stays paused, so only the socket buffers fill.
  response.pause()
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^text\/event-stream/)

  const stalled = await eventually(async () => {
    const before = state.written
    // The behaviour is the upstream making no progress for a while: a quiet second is the observation.
    await sleep(1_000)
    return state.written > 0 && state.written === before ? state.written : undefined
  }, { timeout: 60_000, interval: 0, description: 'the upstream\'s writes to stop growing' })
  t.ok(stalled < MOST_BUFFERED, `the upstream wrote ${(stalled / MIB).toFixed(1)} MiB of ${NOTIFICATIONS} MiB, then waited`)
  t.notOk(state.finished, 'it could not finish')

  response.destroy()
  outgoing.destroy()
  await eventually(() => state.closed, { timeout: 10_000, description: 'the upstream stream to be closed once the client left' })
  t.ok(state.written < MOST_BUFFERED + 2 * MIB, 'nothing more was read after the client left')
})

t.test('a client that reads gets every message, and the stream ends', async (t) => {
  const state: UpstreamStream = { written: 0, finished: false, closed: false }
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method === 'tools/call') streamNotifications(exchange.response, exchange.message.id, state)
    else modernAnswers(exchange)
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = (await post(url, initializeRequest())).headers.get('mcp-session-id') as string
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'flood', arguments: {} } }),
    signal: AbortSignal.timeout(120_000)
  })
  let bytes = 0
  let events = 0
  const marker = 'event: message'
  let tail = ''
  for await (const chunk of response.body as ReadableStream<Uint8Array>) {
    bytes += chunk.length
    const text = tail + Buffer.from(chunk).toString('latin1')
    events += text.split(marker).length - 1
    // Shorter than the marker: a marker split between chunks is counted once, in the next chunk.
    tail = text.slice(-(marker.length - 1))
  }
  t.equal(events, NOTIFICATIONS + 1, 'every notification and the result')
  t.ok(bytes > NOTIFICATIONS * MIB, 'all of it')
  t.ok(tail.includes('\n\n'), 'the stream ended cleanly')
  t.ok(state.finished, 'the upstream finished')
})
