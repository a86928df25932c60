import { SseParser, type SseEvent } from '../../src/mcp/sse-parser.js'
import { eventually } from './eventually.js'

/*
 * An SSE (or any) response read as it comes, for the resumable-stream tests: its events (ids
 * included), its comments and raw text; the test can wait for events and cut the connection.
 */

const WAIT = { timeout: 10_000 }

export interface OpenStream {
  readonly status: number
  readonly headers: Headers
  readonly events: SseEvent[]
  readonly comments: string[]
  readonly raw: string[]
  /** Resolves once `count` events with data arrived. */
  waitFor (count: number): Promise<void>
  readonly ended: Promise<void>
  isEnded (): boolean
  /** Closes the connection, as a dropped client. */
  cut (): void
}

export async function openStream (url: string, init: RequestInit): Promise<OpenStream> {
  const abort = new AbortController()
  const response = await fetch(url, { ...init, signal: abort.signal })
  const events: SseEvent[] = []
  const comments: string[] = []
  const raw: string[] = []
  const parser = new SseParser()
  const decoder = new TextDecoder()
  let isEnded = false
  const ended = (async () => {
    if (response.body === null) return
    try {
      for await (const chunk of response.body) {
        const text = decoder.decode(chunk as Uint8Array, { stream: true })
        raw.push(text)
        for (const line of text.split('\n')) if (line.startsWith(':')) comments.push(line)
        events.push(...parser.push(Buffer.from(chunk as Uint8Array)))
      }
    } catch {
      // cut by the test
    } finally {
      isEnded = true
    }
  })()
  return {
    status: response.status,
    headers: response.headers,
    events,
    comments,
    raw,
    waitFor: async (count) => { await eventually(() => events.filter((event) => event.data !== '').length >= count, { ...WAIT, description: `${count} events` }) },
    ended,
    isEnded: () => isEnded,
    cut: () => { abort.abort() }
  }
}

/** The progress of each message with data, 'result' for a result, the `step` of a GET stream's notifications. */
export function progressOf (events: readonly SseEvent[]): unknown[] {
  return events.filter((event) => event.data !== '').map((event) => {
    const message = JSON.parse(event.data) as { params?: { progress?: unknown, step?: unknown }, result?: unknown }
    return message.result !== undefined ? 'result' : message.params?.progress ?? message.params?.step
  })
}

/** The id of the last event the client got (what it sends back in `Last-Event-ID`). */
export function lastId (stream: OpenStream): string {
  const id = stream.events.at(-1)?.id
  if (id === undefined) throw new Error('no event id')
  return id
}
