import t from 'tap'
import { SseParser } from '../src/mcp/sse-parser.js'
import { redisSection, storeKinds, withGateway, withRedis, withUpstream } from './helpers/fixtures.js'
import { openSession } from './helpers/mcp-http.js'
import type { TestRedis } from './helpers/redis-server.js'

/*
 * An SSE response reaches the client event by event (MCP spec, Transports, Streamable HTTP). The upstream tool writes one
 * message, waits 500 ms, writes a second; the client must read the first before the upstream even
 * writes the second (a buffering proxy could only deliver both together, after the second).
 */

let redis: TestRedis
t.before(async () => { redis = await withRedis(t) })

for (const kind of storeKinds) {
  t.test(`${kind} store: SSE is streamed, never buffered`, async (t) => {
    let secondWrittenAt: number | undefined
    const upstream = await withUpstream(t, { responseMode: 'sse', onSecondMessageWrite: () => { secondWrittenAt = performance.now() } })
    const gateway = await withGateway(t, { config: { ...redisSection(kind, redis), routes: [{ path: '/mcp', upstream: upstream.url }] } })
    const url = `${gateway.origin}/mcp`
    const sessionId = await openSession(url)

    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'stream-two-messages', arguments: { gapMs: 500 } } }),
      signal: AbortSignal.timeout(10_000)
    })
    t.equal(response.status, 200)
    t.match(response.headers.get('content-type'), /^text\/event-stream/)
    t.equal(response.headers.get('x-accel-buffering'), 'no')

    const parser = new SseParser()
    const reads: Array<{ at: number, data: string[] }> = []
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      // The priming event of a resumable stream (an id, no data) carries no message: clients skip it.
      const events = parser.push(Buffer.from(chunk)).filter((event) => event.data !== '')
      if (events.length > 0) reads.push({ at: performance.now(), data: events.map((event) => event.data) })
    }
    const messages = reads.flatMap((read) => read.data.map((data) => JSON.parse(data) as { params?: { data?: string }, result?: unknown }))
    t.same(messages.map((message) => message.params?.data ?? 'result'), ['first message', 'second message', 'result'])
    t.ok(reads.length >= 2, `the messages arrived in ${reads.length} separate reads`)
    t.ok(secondWrittenAt !== undefined, 'the upstream wrote the second message')
    t.ok((reads[0] as { at: number }).at < (secondWrittenAt as number), 'the first message was read before the second was written')
    t.same(reads[0]?.data.map((data) => (JSON.parse(data) as { params: { data: string } }).params.data), ['first message'], 'the first read holds only the first message')
  })
}
