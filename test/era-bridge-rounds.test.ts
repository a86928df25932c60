import t from 'tap'
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SseParser } from '../src/mcp/sse-parser.js'
import { withGateway, type Teardown } from './helpers/fixtures.js'
import { post, request } from './helpers/mcp-http.js'

/*
 * The era bridge (docs/era-bridge.md), the edges of a bridged request, against a scripted 2026-07-28 upstream (a plain HTTP
 * server answering server/discover and whatever each test scripts): input_required in a JSON body,
 * requestState-only rounds, the bounds (rounds, the client's time to answer), a client that answers
 * with an error, an answer from another session, upstream failures before and after the stream
 * started, cancellation while the gateway waits for the client, a client that goes away.
 */

interface Leg {
  readonly body: { id: unknown, method: string, params: Record<string, unknown> }
  readonly request: IncomingMessage
  readonly response: ServerResponse
}

interface ScriptedUpstream {
  readonly url: string
  readonly legs: Leg[]
  /** Set by each test: answers one POST (other than server/discover). */
  answer: (leg: Leg) => void
}

async function scriptedUpstream (t: Teardown): Promise<ScriptedUpstream> {
  const upstream: ScriptedUpstream = { url: '', legs: [], answer: () => {} }
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Leg['body']
      if (body.method === 'server/discover') {
        json(response, { jsonrpc: '2.0', id: body.id, result: { resultType: 'complete', supportedVersions: ['2026-07-28'], capabilities: { tools: {} }, serverInfo: { name: 'scripted', version: '1' } } })
        return
      }
      const leg = { body, request, response }
      upstream.legs.push(leg)
      upstream.answer(leg)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return Object.assign(upstream, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp` })
}

function json (response: ServerResponse, message: unknown, status = 200): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(message))
}

const elicit = { method: 'elicitation/create', params: { mode: 'form', message: 'Sure?', requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } } } } }

function inputRequired (leg: Leg, result: Record<string, unknown>): void {
  json(leg.response, { jsonrpc: '2.0', id: leg.body.id, result: { resultType: 'input_required', ...result } })
}

function complete (leg: Leg, text: string): void {
  json(leg.response, { jsonrpc: '2.0', id: leg.body.id, result: { resultType: 'complete', content: [{ type: 'text', text }] } })
}

/** A POST whose SSE answer is read event by event. */
class StreamedCall {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #parser = new SseParser()
  readonly #queued: unknown[] = []

  constructor (response: Response) {
    this.#reader = (response.body as ReadableStream<Uint8Array>).getReader()
  }

  /** The next JSON-RPC message, or undefined when the stream ended. */
  async next (): Promise<Record<string, unknown> | undefined> {
    while (this.#queued.length === 0) {
      const { done, value } = await this.#reader.read()
      if (done) return undefined
      // An event without data (the priming event of a resumable stream) carries no message: clients skip it.
      for (const event of this.#parser.push(Buffer.from(value))) if (event.data !== '') this.#queued.push(JSON.parse(event.data))
    }
    return this.#queued.shift() as Record<string, unknown>
  }
}

interface Bridged {
  readonly url: string
  readonly sessionId: string
  call (message: Record<string, unknown>): Promise<StreamedCall>
  send (message: Record<string, unknown>, sessionId?: string): ReturnType<typeof post>
}

const LEGACY_HEADERS = { 'mcp-protocol-version': '2025-11-25' }

async function bridged (t: Teardown, upstream: ScriptedUpstream, route: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Promise<Bridged> {
  const gateway = await withGateway(t, { config: { ...config, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'modern', ...route }] } })
  const url = `${gateway.origin}/mcp`
  const open = async (): Promise<string> => {
    const answer = await post(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: { elicitation: {} }, clientInfo: { name: 'raw', version: '1' } } })
    return answer.headers.get('mcp-session-id') as string
  }
  const sessionId = await open()
  return {
    url,
    sessionId,
    call: async (message) => new StreamedCall(await fetch(url, {
      method: 'POST',
      headers: { ...LEGACY_HEADERS, 'mcp-session-id': sessionId, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', ...message })
    })),
    send: async (message, session = sessionId) => await post(url, { jsonrpc: '2.0', ...message }, session, LEGACY_HEADERS)
  }
}

const deploy = { id: 7, method: 'tools/call', params: { name: 'deploy', arguments: {} } }

t.test('input_required in a JSON body, then a requestState-only round: a plain JSON answer', async (t) => {
  const upstream = await scriptedUpstream(t)
  upstream.answer = (leg) => {
    if (leg.body.params.requestState === undefined) inputRequired(leg, { requestState: 'step-2' })
    else complete(leg, `done after ${String(leg.body.params.requestState)}`)
  }
  const gateway = await bridged(t, upstream)
  const answer = await gateway.send(deploy)
  t.match(answer.headers.get('content-type'), /^application\/json/, 'nothing had to be streamed: JSON')
  t.same(JSON.parse(answer.text), { jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'done after step-2' }] } })
  t.same(upstream.legs.map((leg) => leg.body.params), [{ name: 'deploy', arguments: {}, _meta: upstream.legs[0]?.body.params._meta }, { name: 'deploy', arguments: {}, requestState: 'step-2', _meta: upstream.legs[1]?.body.params._meta }],
    'the retry carries the requestState and no inputResponses')
})

t.test('bounds: maxInputRounds', async (t) => {
  const upstream = await scriptedUpstream(t)
  upstream.answer = (leg) => { inputRequired(leg, { inputRequests: { ask: elicit } }) }
  const gateway = await bridged(t, upstream, { maxInputRounds: 2 })
  const call = await gateway.call(deploy)
  for (let round = 1; round <= 2; round++) {
    const asked = await call.next()
    t.match(asked, { method: 'elicitation/create', params: { message: 'Sure?' } }, `round ${round}: asked`)
    t.equal((await gateway.send({ id: asked?.id, result: { action: 'accept', content: { ok: true } } })).status, 202)
  }
  t.match(await call.next(), { id: 7, error: { code: -32603, message: /maxInputRounds/ } }, 'a third round is one too many')
  t.equal(await call.next(), undefined, 'the stream ends')
  t.equal(upstream.legs.length, 3)
})

t.test('bounds: a client that never answers gets an error, not a hung stream', async (t) => {
  const upstream = await scriptedUpstream(t)
  upstream.answer = (leg) => { inputRequired(leg, { inputRequests: { ask: elicit } }) }
  const gateway = await bridged(t, upstream, { inputTimeout: '300ms' })
  const call = await gateway.call(deploy)
  t.match(await call.next(), { method: 'elicitation/create' })
  t.match(await call.next(), { id: 7, error: { code: -32603, message: /did not answer/ } })
  t.equal(await call.next(), undefined)
})

t.test('an answer that is an error ends the request with that error', async (t) => {
  const upstream = await scriptedUpstream(t)
  upstream.answer = (leg) => { inputRequired(leg, { inputRequests: { ask: elicit } }) }
  const gateway = await bridged(t, upstream)
  const call = await gateway.call(deploy)
  const asked = await call.next()
  t.equal((await gateway.send({ id: asked?.id, error: { code: -32601, message: 'no elicitation here' } })).status, 202)
  t.match(await call.next(), { id: 7, error: { code: -32603, message: /no elicitation here/, data: { inputRequest: 'ask', error: { code: -32601 } } } })
})

t.test('a stranger cannot answer', async (t) => {
  const upstream = await scriptedUpstream(t)
  upstream.answer = (leg) => { inputRequired(leg, { inputRequests: { ask: elicit } }) }
  const gateway = await bridged(t, upstream)
  const stranger = (await post(gateway.url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'other', version: '1' } } })).headers.get('mcp-session-id') as string
  const call = await gateway.call(deploy)
  const asked = await call.next()
  t.equal((await gateway.send({ id: asked?.id, result: { action: 'accept', content: { ok: true } } }, stranger)).status, 202, 'accepted, as any response is')
  t.equal((await gateway.send({ id: 'mcpgw.not-an-id', result: {} })).status, 202)
  // The owner's answer ends the request, so that every leg it made is counted.
  t.equal((await gateway.send({ id: asked?.id, error: { code: -32601, message: 'no elicitation here' } })).status, 202)
  t.match(await call.next(), { id: 7, error: { code: -32603 } })
  t.equal(upstream.legs.length, 1, 'the stranger\'s answer was never sent upstream')
})

t.test('cancelled while the gateway waits for the client: the stream ends without a response', async (t) => {
  const upstream = await scriptedUpstream(t)
  upstream.answer = (leg) => { inputRequired(leg, { inputRequests: { ask: elicit } }) }
  const gateway = await bridged(t, upstream)
  const call = await gateway.call(deploy)
  t.match(await call.next(), { method: 'elicitation/create' })
  t.equal((await gateway.send({ method: 'notifications/cancelled', params: { requestId: 7, reason: 'no' } })).status, 202)
  t.equal(await call.next(), undefined)
  t.equal((await gateway.send({ method: 'notifications/cancelled', params: { requestId: 'unknown' } })).status, 202, 'cancelling nothing is harmless')
})

t.test('upstream failures', async (t) => {
  const upstream = await scriptedUpstream(t)
  const gateway = await bridged(t, upstream, { timeout: '1500ms' })

  upstream.answer = (leg) => { json(leg.response, { jsonrpc: '2.0', id: leg.body.id, error: { code: -32602, message: 'bad' } }, 400) }
  const refused = await gateway.send(deploy)
  t.equal(refused.status, 400, 'an HTTP error before anything streamed is passed back as it came')
  t.match(JSON.parse(refused.text), { id: 7, error: { message: 'bad' } })

  upstream.answer = (leg) => {
    leg.response.writeHead(200, { 'content-type': 'text/event-stream' })
    leg.response.end(`data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'working' } })}\n\n`)
  }
  const cut = await gateway.call(deploy)
  t.match(await cut.next(), { method: 'notifications/message' }, 'notifications are relayed as they come')
  t.match(await cut.next(), { id: 7, error: { code: -32603, message: /without a response/ } })

  upstream.answer = (leg) => { inputRequired(leg, { inputRequests: { ask: 'not a request' } }) }
  const malformed = await gateway.send(deploy)
  t.equal(malformed.status, 502, 'a malformed input_required result is refused, not half-bridged')
  t.match(JSON.parse(malformed.text), { id: 7, error: { message: /malformed input_required/ } })

  upstream.answer = () => {}
  const slow = await gateway.send(deploy)
  t.equal(slow.status, 504, 'no headers within routes[].timeout')

  upstream.answer = (leg) => { leg.response.destroy() }
  t.equal((await gateway.send(deploy)).status, 502)

  const metrics = await (await fetch(new URL('/metrics', gateway.url))).text()
  t.match(metrics, /mcpgw_upstream_errors_total\{route="\/mcp",kind="timeout"\} 1/, 'bridged failures count like forwarded ones')
  t.match(metrics, /mcpgw_upstream_errors_total\{route="\/mcp",kind="unreachable"\} 1/)
  t.match(metrics, /mcpgw_upstream_errors_total\{route="\/mcp",kind="invalid"\} 2/, 'an answer without a response, a malformed input_required')
  t.match(metrics, /mcpgw_upstream_duration_seconds_count\{route="\/mcp"\} [1-9]/)
})

t.test('without resumable streams, a client that goes away closes the upstream call too', async (t) => {
  const upstream = await scriptedUpstream(t)
  let upstreamClosed!: () => void
  const closed = new Promise<void>((resolve) => { upstreamClosed = resolve })
  let started!: () => void
  const running = new Promise<void>((resolve) => { started = resolve })
  upstream.answer = (leg) => {
    leg.response.writeHead(200, { 'content-type': 'text/event-stream' })
    leg.response.write(`data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } })}\n\n`)
    leg.response.once('close', upstreamClosed)
    started()
  }
  // Resumable streams read on for a resume instead (test/resumable-streams.test.ts).
  const gateway = await bridged(t, upstream, {}, { streams: { resumable: false } })
  // node:http without an agent: the connection is this request's alone, and destroying it is the client leaving.
  const client = httpRequest(gateway.url, { method: 'POST', agent: false, headers: { ...LEGACY_HEADERS, 'mcp-session-id': gateway.sessionId, 'content-type': 'application/json', accept: 'application/json, text/event-stream' } })
  client.on('error', () => {})
  client.end(JSON.stringify({ jsonrpc: '2.0', ...deploy }))
  const response = await new Promise<IncomingMessage>((resolve) => client.once('response', resolve))
  await running
  // The stream opens with a comment (its head leaves at once), then the notification.
  let received = ''
  await new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('utf8')
      if (!received.includes('notifications/progress')) return
      response.off('data', onData)
      resolve()
    }
    response.on('data', onData)
  })
  t.match(received, /notifications\/progress/)
  client.destroy()
  await closed
  t.pass('the upstream connection was closed')
})

t.test('the GET stream: a listen request upstream, replaced on (un)subscribe, ended by DELETE', async (t) => {
  const upstream = await scriptedUpstream(t)
  const listens: Leg[] = []
  upstream.answer = (leg) => {
    if (leg.body.method !== 'subscriptions/listen') return complete(leg, 'x')
    listens.push(leg)
    leg.response.writeHead(200, { 'content-type': 'text/event-stream' })
    const meta = { 'io.modelcontextprotocol/subscriptionId': leg.body.id }
    leg.response.write(`data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: { notifications: leg.body.params.notifications, _meta: meta } })}\n\n`)
    leg.response.write(`data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: { _meta: meta } })}\n\n`)
  }
  const gateway = await bridged(t, upstream, { getStream: 'forward' })
  const stream = new StreamedCall(await fetch(gateway.url, { headers: { ...LEGACY_HEADERS, 'mcp-session-id': gateway.sessionId, accept: 'text/event-stream' } }))
  t.same(await stream.next(), { jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: {} }, 'relayed without the acknowledgement and the subscription id')
  t.same(listens[0]?.body.params.notifications, { toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true })
  const firstClosed = new Promise((resolve) => listens[0]?.response.once('close', resolve))
  t.same(JSON.parse((await gateway.send({ id: 1, method: 'resources/subscribe', params: { uri: 'demo://a' } })).text).result, {})
  await firstClosed
  t.pass('the listen request with the old filter is closed')
  t.same(await stream.next(), { jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: {} }, 'the new listen request relays too')
  t.match(listens[1]?.body.params.notifications, { resourceSubscriptions: ['demo://a'] })
  const secondClosed = new Promise((resolve) => listens[1]?.response.once('close', resolve))
  t.equal((await request(gateway.url, { method: 'DELETE', headers: { ...LEGACY_HEADERS, 'mcp-session-id': gateway.sessionId } })).status, 204)
  t.equal(await stream.next(), undefined, 'the client\'s GET stream ends with its session')
  await secondClosed
  t.equal(listens.length, 2)
})

t.test('the GET stream ends when the upstream will not listen', async (t) => {
  const upstream = await scriptedUpstream(t)
  upstream.answer = (leg) => { json(leg.response, { jsonrpc: '2.0', id: leg.body.id, error: { code: -32601, message: 'no listen' } }, 404) }
  const gateway = await bridged(t, upstream, { getStream: 'forward' })
  const stream = new StreamedCall(await fetch(gateway.url, { headers: { ...LEGACY_HEADERS, 'mcp-session-id': gateway.sessionId, accept: 'text/event-stream' } }))
  t.equal(await stream.next(), undefined)
})

t.test('settings answered at the edge check their params', async (t) => {
  const upstream = await scriptedUpstream(t)
  const gateway = await bridged(t, upstream)
  t.match(JSON.parse((await gateway.send({ id: 1, method: 'logging/setLevel', params: { level: 'loud' } })).text), { id: 1, error: { code: -32602 } })
  t.match(JSON.parse((await gateway.send({ id: 2, method: 'resources/subscribe', params: {} })).text), { id: 2, error: { code: -32602 } })
  t.same(JSON.parse((await gateway.send({ id: 3, method: 'resources/subscribe', params: { uri: 'demo://x' } })).text), { jsonrpc: '2.0', id: 3, result: {} })
  t.equal(upstream.legs.length, 0)
})
