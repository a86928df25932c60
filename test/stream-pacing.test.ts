import t from 'tap'
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { SseParser } from '../src/mcp/sse-parser.js'
import { eventually } from './helpers/eventually.js'
import { withGateway, type Teardown } from './helpers/fixtures.js'
import { initializeRequest, LATEST_LEGACY_VERSION, post } from './helpers/mcp-http.js'
import { legacyAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * A forwarded stream of a legacy session is relayed event by event (docs/streams.md): a slow reader
 * holds the upstream back instead of growing the gateway's memory, polling ends a response at the
 * next event with an id, and a standalone GET whose upstream fails is answered like any upstream
 * failure. Memory store, one gateway: what is tested here is the relay, not the store.
 */

const MIB = 1024 * 1024
const MOST_BUFFERED = 24 * MIB

function sessionHeaders (sessionId: string, version = LATEST_LEGACY_VERSION): Record<string, string> {
  return { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': version }
}

async function openSessionOf (url: string, version = LATEST_LEGACY_VERSION): Promise<string> {
  const answer = await post(url, initializeRequest(1, version))
  return answer.headers.get('mcp-session-id') as string
}

/** A tools/call whose response the test reads (or not) itself: node:http, the connection its own. */
async function toolCallResponse (t: Teardown, url: string, sessionId: string): Promise<IncomingMessage> {
  const outgoing = httpRequest(url, { method: 'POST', agent: false, headers: sessionHeaders(sessionId) })
  t.teardown(() => { outgoing.destroy() })
  return await new Promise<IncomingMessage>((resolve, reject) => {
    outgoing.once('response', resolve)
    outgoing.once('error', reject)
    outgoing.end(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flood', arguments: {} } }))
  })
}

t.test('a client that reads nothing holds a forwarded upstream stream back', async (t) => {
  const state = { written: 0, finished: false }
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      legacyAnswers(exchange)
      return
    }
    const response: ServerResponse = exchange.response
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    const event = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x'.repeat(MIB) } })}\n\n`
    let sent = 0
    const writeMore = (): void => {
      while (sent < 200) {
        if (response.destroyed) return
        sent++
        state.written += event.length
        if (!response.write(event)) {
          response.once('drain', writeMore)
          return
        }
      }
      state.finished = true
      response.end()
    }
    writeMore()
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSessionOf(url)
  const response = await toolCallResponse(t, url, sessionId)
  // Read nothing: only the socket buffers fill.
  response.pause()
  const stalled = await eventually(async () => {
    const before = state.written
    // The behaviour is the upstream making no progress for a while: a quiet second is the observation.
    await sleep(1_000)
    return state.written > 0 && state.written === before ? state.written : undefined
  }, { timeout: 60_000, interval: 0, description: 'the upstream\'s writes to stop growing' })
  t.ok(stalled < MOST_BUFFERED, `the upstream wrote ${(stalled / MIB).toFixed(1)} MiB of 200 MiB, then waited`)
  t.notOk(state.finished, 'it could not finish')
})

t.test('polling: a response past maxConnectionTime ends at its next event with an id, with retry', async (t) => {
  let release!: (response: ServerResponse, id: unknown) => void
  const held = new Promise<{ response: ServerResponse, id: unknown }>((resolve) => { release = (response, id) => { resolve({ response, id }) } })
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      legacyAnswers(exchange)
      return
    }
    exchange.response.writeHead(200, { 'content-type': 'text/event-stream' })
    release(exchange.response, exchange.message.id)
  })
  const gateway = await withGateway(t, { config: { streams: { maxConnectionTime: '100ms' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const url = `${gateway.origin}/mcp`
  // 2025-06-18: no priming event, so no id went out before the time was up.
  const sessionId = await openSessionOf(url, '2025-06-18')
  const answer = fetch(url, { method: 'POST', headers: sessionHeaders(sessionId, '2025-06-18'), body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'slow', arguments: {} } }) })
  const { response: upstreamResponse, id } = await held
  // The behaviour is the connection time passing with nothing to send.
  await sleep(300)
  upstreamResponse.write(`data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'late' } })}\n\n`)
  const text = await (await answer).text()
  t.match(text, /id: r[\w-]{16}\.1\nevent: message\ndata: .*"late".*\n\nretry: 1000\n\n$/s, 'the first event with an id, then retry, then the end')
  upstreamResponse.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id, result: {} })}\n\n`)
})

t.test('a standalone GET whose upstream is unreachable: 502; whose upstream answers no stream: its answer', async (t) => {
  let refuse = false
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.method === 'GET') {
      if (refuse) exchange.response.writeHead(405, { allow: 'POST' }).end()
      else exchange.request.socket.destroy()
      return
    }
    legacyAnswers(exchange)
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy', getStream: 'forward' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSessionOf(url)
  const failed = await fetch(url, { headers: { ...sessionHeaders(sessionId), accept: 'text/event-stream' } })
  t.equal(failed.status, 502)
  t.match(await failed.json(), { error: { message: /upstream/i } })
  refuse = true
  const refused = await fetch(url, { headers: { ...sessionHeaders(sessionId), accept: 'text/event-stream' } })
  t.equal(refused.status, 405, 'the upstream\'s own answer')
  t.equal(refused.headers.get('allow'), 'POST')
  await refused.text()
})

t.test('events split across chunks and CRLF line ends are relayed whole', async (t) => {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      legacyAnswers(exchange)
      return
    }
    const { response } = exchange
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    const text = `event: message\r\ndata: {"jsonrpc":"2.0","method":"notifications/message",\r\ndata: "params":{"level":"info","data":"é"}}\r\n\r\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: exchange.message.id, result: {} })}\r\n\r\n`
    const bytes = Buffer.from(text)
    // One byte at a time: an event, a line end, even a UTF-8 character split anywhere.
    let index = 0
    const next = (): void => {
      if (index >= bytes.length) {
        response.end()
        return
      }
      response.write(bytes.subarray(index, index + 1))
      index++
      setImmediate(next)
    }
    next()
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSessionOf(url)
  const text = await (await fetch(url, { method: 'POST', headers: sessionHeaders(sessionId), body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'x', arguments: {} } }) })).text()
  const events = new SseParser().push(Buffer.from(text)).filter((event) => event.data !== '')
  t.same(events.map((event) => JSON.parse(event.data.replace('\n', '')) as unknown), [
    { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'é' } },
    { jsonrpc: '2.0', id: 4, result: {} }
  ])
})

t.test('a client that takes nothing for a whole retention is let go: the call ends after another retention', async (t) => {
  let closed = false
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.method !== 'tools/call') {
      legacyAnswers(exchange)
      return
    }
    const response: ServerResponse = exchange.response
    response.once('close', () => { closed = true })
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    const event = `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x'.repeat(MIB) } })}\n\n`
    const writeMore = (): void => {
      while (!response.destroyed) {
        if (!response.write(event)) {
          response.once('drain', writeMore)
          return
        }
      }
    }
    writeMore()
  })
  const gateway = await withGateway(t, { config: { streams: { retention: '500ms' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const url = `${gateway.origin}/mcp`
  const sessionId = await openSessionOf(url)
  const response = await toolCallResponse(t, url, sessionId)
  // Connected, reading nothing: the writer must not wait on it for ever.
  response.pause()
  await eventually(() => closed, { timeout: 15_000, description: 'the upstream call closed' })
  t.pass('the upstream call was closed: nobody took the stream over within retention')
})
