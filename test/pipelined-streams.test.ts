import t from 'tap'
import { connect } from 'node:net'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'
import { withStreamingUpstream } from './helpers/streaming-upstream.js'

/*
 * HTTP/1.1 pipelining (RFC 9112 §9.3.2): two streamed calls sent back to back on one connection are
 * answered in order, each whole. The second waits behind the first without a socket of its own
 * yet, which is not a client that left.
 */

t.test('two pipelined streamed calls on one connection: both answered, in order', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withStreamingUpstream(t)
  const gateway = await withGateway(t, { config: { redis: { url: redis.url, keyPrefix: 'pipelined:' }, routes: [{ path: '/mcp', upstream: upstream.url, upstreamEra: 'legacy' }] } })
  const port = Number(new URL(gateway.origin).port)
  const sessionId = (await post(`${gateway.origin}/mcp`, initializeRequest())).headers.get('mcp-session-id') as string
  const call = (id: number): string => {
    const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'stream', arguments: { events: 2, gapMs: 50 } } })
    return `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n` +
      `mcp-session-id: ${sessionId}\r\nmcp-protocol-version: 2025-11-25\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  }
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { received += chunk })
  socket.write(call(1) + call(2))
  await eventually(() => /"id":2,"result"/.test(received), { timeout: 10_000, description: 'the second call\'s result' })
  const [first, second] = received.split(/(?=HTTP\/1\.1 )/)
  t.match(first, /^HTTP\/1\.1 200[\s\S]*"id":1,"result"/, 'the first call, whole')
  t.match(second, /^HTTP\/1\.1 200[\s\S]*"id":2,"result"/, 'then the second, whole')
})
