import t from 'tap'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { withGateway } from './helpers/fixtures.js'
import { initializeRequest, LATEST_LEGACY_VERSION, openSession } from './helpers/mcp-http.js'
import { json, legacyAnswers, modernAnswers, withScriptedUpstream } from './helpers/scripted-upstream.js'

/*
 * Hop-by-hop headers describe one connection (RFC 9110 §7.6.1): `Expect: 100-continue` is answered
 * by the gateway itself (RFC 9110 §10.1.1), and the headers a `Connection` header names stop at the
 * gateway, in both directions (docs/architecture.md, "The request path").
 */

interface RawAnswer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly text: string
}

/** A POST over node:http, which sends exactly the headers given (fetch refuses some of these). */
async function rawPost (url: string, headers: Record<string, string>, body: unknown): Promise<RawAnswer> {
  const text = JSON.stringify(body)
  const expectContinue = headers.expect === '100-continue'
  return await new Promise((resolve, reject) => {
    const outgoing = httpRequest(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': String(Buffer.byteLength(text)), ...headers },
      signal: AbortSignal.timeout(10_000)
    }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString('utf8') }) })
      response.on('error', reject)
    })
    outgoing.on('error', reject)
    // With Expect: 100-continue the body waits for the interim answer, as a client must.
    if (expectContinue) outgoing.on('continue', () => outgoing.end(text))
    else outgoing.end(text)
  })
}

const legacyHeaders = (sessionId: string): Record<string, string> => ({ 'mcp-session-id': sessionId, 'mcp-protocol-version': LATEST_LEGACY_VERSION })
const ping = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }

for (const upstreamEra of ['legacy', 'modern'] as const) {
  t.test(`${upstreamEra} route: Expect: 100-continue is answered by the gateway, the request goes through`, async (t) => {
    const upstream = await withScriptedUpstream(t, upstreamEra === 'modern' ? modernAnswers : legacyAnswers)
    const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra }] } })
    const url = `${gateway.origin}/mcp`

    const initialized = await rawPost(url, { expect: '100-continue' }, initializeRequest())
    t.equal(initialized.status, 200, 'initialize')
    t.type(initialized.headers['mcp-session-id'], 'string', 'a session was minted')

    const sessionId = await openSession(url)

    const answer = await rawPost(url, { ...legacyHeaders(sessionId), expect: '100-continue' }, ping)
    t.equal(answer.status, 200, 'a POST on the session')
    t.match(JSON.parse(answer.text), { jsonrpc: '2.0', id: 2, result: {} })
    t.notOk(upstream.received.some((exchange) => exchange.headers.expect !== undefined), 'no Expect header reached the upstream')
  })

  t.test(`${upstreamEra} route: headers the client's Connection header names stop at the gateway`, async (t) => {
    const upstream = await withScriptedUpstream(t, upstreamEra === 'modern' ? modernAnswers : legacyAnswers)
    const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra }] } })
    const url = `${gateway.origin}/mcp`
    const hop = { connection: 'keep-alive, x-hop', 'x-hop': '1', 'x-end-to-end': 'kept' }

    const initialized = await rawPost(url, hop, initializeRequest())
    t.equal(initialized.status, 200)
    const sessionId = initialized.headers['mcp-session-id'] as string
    const answer = await rawPost(url, { ...legacyHeaders(sessionId), ...hop }, ping)
    t.equal(answer.status, 200)

    const upstreamRequests = upstream.received.filter((exchange) => exchange.method === 'POST')
    t.ok(upstreamRequests.length >= 2, 'the upstream was asked (initialize or server/discover, then the call)')
    for (const exchange of upstreamRequests) {
      t.equal(exchange.headers['x-hop'], undefined, `${String(exchange.message?.method)}: the named header did not cross`)
      t.equal(exchange.headers['x-end-to-end'], 'kept', `${String(exchange.message?.method)}: an end-to-end header did`)
    }
  })
}

t.test('headers the upstream\'s Connection header names stop at the gateway', async (t) => {
  const upstream = await withScriptedUpstream(t, (exchange) => {
    if (exchange.message?.id === undefined) {
      legacyAnswers(exchange)
      return
    }
    const result = exchange.message.method === 'initialize'
      ? { protocolVersion: LATEST_LEGACY_VERSION, capabilities: {}, serverInfo: { name: 'scripted', version: '1' } }
      : {}
    json(exchange.response, { jsonrpc: '2.0', id: exchange.message.id, result }, 200, { connection: 'keep-alive, x-upstream-hop', 'x-upstream-hop': 'secret', 'x-upstream-end-to-end': 'kept' })
  })
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const url = `${gateway.origin}/mcp`

  const initialized = await rawPost(url, {}, initializeRequest())
  t.equal(initialized.status, 200)
  t.equal(initialized.headers['x-upstream-hop'], undefined, 'initialize: the named header did not cross')
  t.equal(initialized.headers['x-upstream-end-to-end'], 'kept', 'initialize: an end-to-end header did')

  const sessionId = await openSession(url)
  const answer = await rawPost(url, legacyHeaders(sessionId), ping)
  t.equal(answer.status, 200)
  t.equal(answer.headers['x-upstream-hop'], undefined, 'a forwarded POST: the named header did not cross')
  t.equal(answer.headers['x-upstream-end-to-end'], 'kept', 'a forwarded POST: an end-to-end header did')
})
