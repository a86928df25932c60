import t from 'tap'
import { formatEventId, newStreamName, parseEventId } from '../src/streams/event-id.js'
import { serializeEvent } from '../src/streams/sse-response.js'
import { SseParser } from '../src/mcp/sse-parser.js'

/* Event ids and event framing of resumable streams (docs/streams.md). */

t.test('an id names its stream and position, in at most 64 visible ASCII characters', async (t) => {
  for (const kind of ['response', 'standalone'] as const) {
    const stream = newStreamName(kind)
    const id = formatEventId(stream, 123_456_789)
    t.match(id, /^[\x21-\x7e]{1,64}$/)
    t.same(parseEventId(id), { stream, kind, seq: 123_456_789 })
  }
  t.not(newStreamName('response'), newStreamName('response'), 'random per stream')
})

t.test('anything the gateway did not make is no id of its streams', async (t) => {
  const stream = newStreamName('response')
  for (const value of [undefined, ['a', 'b'], '', 'upstream-own-id', `${stream}.0`, `${stream}.01`, `${stream}.-1`, `${stream}`, `x${stream.slice(1)}.1`, `${stream}.1 `, `${stream}.1234567890123456`]) {
    t.equal(parseEventId(value as string | undefined), undefined, JSON.stringify(value))
  }
})

t.test('events are framed whole and read back the same', async (t) => {
  const text = serializeEvent({ id: 'r1.1', data: '{"a":1}\n{"b":2}', type: 'custom', retry: 500 }) + serializeEvent({ data: '{}' }) + serializeEvent({ data: '', id: 'r1.2', type: 'message' })
  t.equal(text, 'id: r1.1\nevent: custom\ndata: {"a":1}\ndata: {"b":2}\nretry: 500\n\nevent: message\ndata: {}\n\nid: r1.2\nevent: message\ndata: \n\n')
  t.same(new SseParser().push(Buffer.from(text)), [
    { event: 'custom', data: '{"a":1}\n{"b":2}', id: 'r1.1', retry: 500 },
    { event: 'message', data: '{}' },
    { event: 'message', data: '', id: 'r1.2' }
  ])
})
