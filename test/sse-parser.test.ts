import t from 'tap'
import { SseParser, type SseEvent } from '../src/mcp/sse-parser.js'

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

t.test('id (unless it holds NUL) and retry (digits only) ride with the event; a field with no colon is a name with an empty value', async (t) => {
  const parser = new SseParser()
  t.same(parser.push(Buffer.from('id: 7\nretry: 1500\ndata: a\n\nid: x\0y\nretry: 15s\ndata: b\n\nid\ndata\n\n')), [
    { event: 'message', data: 'a', id: '7', retry: 1500 },
    { event: 'message', data: 'b' },
    { event: 'message', data: '', id: '' }
  ])
})

t.test('a CR, then an empty chunk, then LF is still one line end', async (t) => {
  const parser = new SseParser()
  const events = [...parser.push(Buffer.from('data: one\r')), ...parser.push(Buffer.alloc(0)), ...parser.push(Buffer.from('\ndata: two\n\n'))]
  t.same(events, [{ event: 'message', data: 'one\ntwo' }])
})

t.test('maxEventLength: a line still being read, or an event\'s data, past it throws MCPGW_UPSTREAM_RESPONSE_TOO_LARGE at once', async (t) => {
  const tooLarge = { code: 'MCPGW_UPSTREAM_RESPONSE_TOO_LARGE' }
  const pendingLine = new SseParser(100)
  t.same(pendingLine.push(Buffer.from(`data: ${'x'.repeat(90)}`)), [], 'under the cap: held')
  t.throws(() => pendingLine.push(Buffer.from('x'.repeat(10))), tooLarge, 'an unfinished line over the cap throws with the chunk that crossed it')
  t.same(pendingLine.push(Buffer.from('data: small\n\n')), [{ event: 'message', data: 'small' }], 'nothing of it is kept')

  const manyLines = new SseParser(100)
  t.throws(() => manyLines.push(Buffer.from(`data: ${'x'.repeat(60)}\ndata: ${'y'.repeat(60)}\n`)), tooLarge, 'data lines that together pass the cap, before the blank line')

  const chunked = new SseParser(100)
  t.same(chunked.push(Buffer.from(`data: ${'x'.repeat(50)}\n`)), [])
  t.throws(() => chunked.push(Buffer.from(`data: ${'y'.repeat(50)}`)), tooLarge, 'held data and an unfinished line together')

  t.same(new SseParser(100).push(Buffer.from(`data: ${'x'.repeat(98)}\n\n`)), [{ event: 'message', data: 'x'.repeat(98) }], 'an event at the cap passes')
})

/** CPU time (user + system) of parsing `bytes` pushed `chunkBytes` at a time, and what came out. */
function parseCpu (bytes: Buffer, chunkBytes: number): { microseconds: number, events: SseEvent[] } {
  const parser = new SseParser(16 * 1024 * 1024)
  const events: SseEvent[] = []
  const start = process.cpuUsage()
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) events.push(...parser.push(bytes.subarray(offset, offset + chunkBytes)))
  const used = process.cpuUsage(start)
  return { microseconds: used.user + used.system, events }
}

t.test('the work is linear in the bytes: one 4 MiB event in 1460-byte chunks costs a small multiple of the same bytes in one chunk', async (t) => {
  // A ratio of CPU times, never a duration: a faster machine shrinks both sides alike. Searching the
  // pending line again with every chunk (quadratic) put it above 1,000×; a linear parser is about 1–3×.
  const MAX_RATIO = 10
  const SEGMENT_BYTES = 1460
  const text = 'x'.repeat(4 * 1024 * 1024)
  const bytes = Buffer.from(`event: message\ndata: ${text}\n\n`)
  // Unrecorded: the parser's code is compiled before it is measured.
  parseCpu(bytes.subarray(0, 256 * 1024), SEGMENT_BYTES)
  // The least of a few rounds: what the parse costs, without the compiling and the garbage
  // collections that fell into a round (the first chunked round is often several times the next).
  let whole = Number.POSITIVE_INFINITY
  for (let round = 0; round < 5; round++) {
    const parsed = parseCpu(bytes, bytes.length)
    t.ok(parsed.events.length === 1 && parsed.events[0]?.data === text, `whole, round ${round + 1}: the one event`)
    whole = Math.min(whole, parsed.microseconds)
  }
  let chunked = Number.POSITIVE_INFINITY
  for (let round = 0; round < 3; round++) {
    const parsed = parseCpu(bytes, SEGMENT_BYTES)
    t.ok(parsed.events.length === 1 && parsed.events[0]?.data === text, `chunked, round ${round + 1}: the one event`)
    chunked = Math.min(chunked, parsed.microseconds)
  }
  t.ok(chunked / whole < MAX_RATIO, `chunked ÷ whole: ${(chunked / whole).toFixed(1)}× (${chunked} µs ÷ ${whole} µs), under ${MAX_RATIO}×`)
})
