import { SseParser } from '../src/mcp/sse-parser.js'
import { median } from './rounds.js'

/*
 * The SSE parsing row of `npm run bench` (docs/performance.md, "SSE parsing"): CPU time of the
 * gateway's SSE parser for one large event arriving as the network delivers it, one TCP segment's
 * payload at a time, beside the same bytes pushed in one piece. Every relayed stream, initialize
 * answer and bridged answer goes through this parser, so its cost must grow with the bytes, not with
 * their square: chunked ÷ whole stays a small constant when it does.
 */

/** A TCP segment's payload on a 1500-byte Ethernet MTU: how a large upstream write reaches the gateway. */
export const SEGMENT_BYTES = 1460
const ROUNDS = 3
const WARM_UP_BYTES = 256 * 1024
/** The default limits.maxResponseBytes: the cap the gateway parses under. */
const MAX_EVENT_LENGTH = 16 * 1024 * 1024

/** The event sizes measured, both under the default limits.maxResponseBytes (16 MiB). */
export const EVENT_SIZES: ReadonlyArray<{ readonly name: string, readonly bytes: number }> = [
  { name: '4 MiB', bytes: 4 * 1024 * 1024 },
  { name: '12 MB', bytes: 12_000_000 }
]

/** One SSE event of exactly `bytes` bytes: a JSON-RPC result carrying one long text, as a tool answer would. */
export function largeSseEvent (bytes: number): Buffer {
  const head = 'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"'
  const tail = '"}]}}\n\n'
  const fill = bytes - head.length - tail.length
  if (fill < 0) throw new RangeError(`an event needs at least ${head.length + tail.length} bytes`)
  return Buffer.from(head + 'x'.repeat(fill) + tail)
}

/** CPU seconds (user + system, this process) to parse `bytes` pushed `chunkBytes` at a time; exactly one event must come out. */
export function parseCpuSeconds (bytes: Buffer, chunkBytes: number): number {
  const parser = new SseParser(MAX_EVENT_LENGTH)
  let events = 0
  const start = process.cpuUsage()
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) events += parser.push(bytes.subarray(offset, offset + chunkBytes)).length
  const used = process.cpuUsage(start)
  if (events !== 1) throw new Error(`expected one event, parsed ${events}`)
  return (used.user + used.system) / 1e6
}

export interface SseParseResult {
  readonly event: string
  readonly bytes: number
  readonly chunkBytes: number
  /** Median CPU seconds over the rounds. */
  readonly chunkedSeconds: number
  readonly wholeSeconds: number
  readonly chunkedOverWhole: number
}

/** Each event size, chunked and whole, in alternating rounds; the median of each. */
export function sseParseBench (): SseParseResult[] {
  return EVENT_SIZES.map(({ name, bytes }) => {
    const event = largeSseEvent(bytes)
    // Unrecorded, and small (a slow parser costs no extra minutes): the parser's code is compiled before the first round.
    parseCpuSeconds(largeSseEvent(WARM_UP_BYTES), SEGMENT_BYTES)
    const chunked: number[] = []
    const whole: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      chunked.push(parseCpuSeconds(event, SEGMENT_BYTES))
      whole.push(parseCpuSeconds(event, event.length))
    }
    const chunkedSeconds = median(chunked)
    const wholeSeconds = median(whole)
    return { event: name, bytes, chunkBytes: SEGMENT_BYTES, chunkedSeconds, wholeSeconds, chunkedOverWhole: chunkedSeconds / wholeSeconds }
  })
}

export function printSseParseResults (results: readonly SseParseResult[]): void {
  process.stdout.write(`\n${'SSE parsing, one event (median of rounds)'.padEnd(44)}  in ${SEGMENT_BYTES}-byte chunks   in one chunk   chunked ÷ whole\n`)
  for (const result of results) {
    const name = `one ${result.event} event (${result.bytes.toLocaleString('en-US')} bytes)`
    process.stdout.write(`${name.padEnd(44)}  ${`${(result.chunkedSeconds * 1000).toFixed(1)} ms`.padStart(19)}  ${`${(result.wholeSeconds * 1000).toFixed(1)} ms`.padStart(13)}  ${`${result.chunkedOverWhole.toFixed(1)}×`.padStart(16)}\n`)
  }
}
