import t from 'tap'
import { SseParser } from '../src/mcp/sse-parser.js'

const stream = 'event: message\r\ndata: {"a":1}\r\n\r\n: a comment\n\ndata: line one\ndata:line two\n\nevent: ping\ndata: x\r\rdata: é\n\n'
const expected = [
  { event: 'message', data: '{"a":1}' },
  { event: 'message', data: 'line one\nline two' },
  { event: 'ping', data: 'x' },
  { event: 'message', data: 'é' }
]

t.test('parses a whole stream at once', async (t) => {
  t.same(new SseParser().push(Buffer.from(stream)), expected)
})

t.test('gives the same events whatever the chunk boundaries, even inside CRLF or a UTF-8 character', async (t) => {
  const bytes = Buffer.from(stream)
  for (let split = 1; split < bytes.length; split++) {
    const parser = new SseParser()
    const events = [...parser.push(bytes.subarray(0, split)), ...parser.push(bytes.subarray(split))]
    t.same(events, expected, `split at byte ${split}`)
  }
  const parser = new SseParser()
  const oneByteAtATime = [...bytes].flatMap((byte) => parser.push(Buffer.from([byte])))
  t.same(oneByteAtATime, expected, 'one byte per chunk')
})

t.test('does not dispatch an event before its blank line', async (t) => {
  const parser = new SseParser()
  t.same(parser.push(Buffer.from('data: partial\n')), [])
  t.same(parser.push(Buffer.from('\n')), [{ event: 'message', data: 'partial' }])
})
