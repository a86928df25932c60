import type { FastifyReply } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import { PassThrough } from 'node:stream'

/*
 * The client's side of one SSE stream the gateway serves for a legacy session (docs/streams.md):
 * whole events only, so that a keep-alive comment never lands inside one; a `: keepalive` comment
 * after `streams.keepAlive` without output (load balancers cut idle connections); with
 * `streams.maxConnectionTime`, the response ends after an event with an id, with a `retry:` field,
 * and the client comes back with `Last-Event-ID` (2025-11-25, SSE polling). Writes wait for a slow
 * reader (`drain`), so a slow client slows its upstream instead of growing the gateway's memory.
 */

export interface SseResponseOptions {
  /** Milliseconds of silence before a keep-alive comment; 0: none. */
  readonly keepAlive: number
  /** Milliseconds after which the response ends at the next event with an id; 0: never. */
  readonly maxConnectionTime: number
  /**
   * streams.retention: a client that takes nothing for this long while output waits for it is gone
   * (a stalled connection nobody reads); its response is closed and the writer no longer waits.
   */
  readonly retention: number
}

export interface OutgoingEvent {
  readonly data: string
  readonly id?: string | undefined
  /** The SSE event type (`message` when absent); a priming event (empty data, no type) has none. */
  readonly type?: string | undefined
  readonly retry?: number | undefined
}

/** Why the client stopped receiving this response. */
export type DetachReason = 'client gone' | 'connection time' | 'taken over' | 'ended'

/** What the client is told to wait before it reconnects after a polling end (it MUST respect it). */
export const POLLING_RETRY_MS = 1_000

const KEEP_ALIVE = ': keepalive\n\n'

export function serializeEvent (event: OutgoingEvent): string {
  let text = event.id === undefined ? '' : `id: ${event.id}\n`
  // `message` is the default type; written all the same, as SDK servers do (some clients look for it).
  if (event.data !== '' || event.type !== undefined) text += `event: ${event.type ?? 'message'}\n`
  // The parser split the data on every line end; each line is one data field again.
  text += event.data.includes('\n') ? `data: ${event.data.split('\n').join('\ndata: ')}\n` : `data: ${event.data}\n`
  if (event.retry !== undefined) text += `retry: ${event.retry}\n`
  return text + '\n'
}

export class SseResponse {
  readonly #reply: FastifyReply
  readonly #options: SseResponseOptions
  #stream: PassThrough | undefined
  #keepAlive: NodeJS.Timeout | undefined
  #connectionTime: NodeJS.Timeout | undefined
  #idSent = false
  #endAtNextId = false
  readonly #detached = new AbortController()

  constructor (reply: FastifyReply, options: SseResponseOptions) {
    this.#reply = reply
    this.#options = options
  }

  /** Aborts (with a DetachReason) once the client receives nothing more on this response. */
  get detached (): AbortSignal {
    return this.#detached.signal
  }

  get attached (): boolean {
    return !this.#detached.signal.aborted
  }

  get started (): boolean {
    return this.#stream !== undefined
  }

  /** Sends the response head with `headers` (the upstream's, rewritten) and opens the stream. */
  start (statusCode = 200, headers: OutgoingHttpHeaders = {}): void {
    if (this.#stream !== undefined) return
    const stream = new PassThrough()
    this.#stream = stream
    const raw = this.#reply.raw
    raw.once('close', () => { this.#detach('client gone') })
    // Gone already (while the upstream was still answering): 'close' will not come again. A response
    // with no socket yet is not gone: it waits behind an earlier one of its pipelined connection.
    if (raw.destroyed || (raw.socket !== null && raw.socket.destroyed)) this.#detach('client gone')
    this.#reply.code(statusCode).headers(headers)
    this.#reply.removeHeader('content-length')
    this.#reply.header('content-type', 'text/event-stream').header('cache-control', 'no-cache').header('x-accel-buffering', 'no')
    this.#reply.send(stream)
    if (this.#options.keepAlive > 0) {
      this.#keepAlive = setTimeout(() => { this.#sendKeepAlive() }, this.#options.keepAlive)
      this.#keepAlive.unref()
    }
    if (this.#options.maxConnectionTime > 0) {
      this.#connectionTime = setTimeout(() => {
        this.#endAtNextId = true
        if (this.#idSent) this.#pollingEnd()
      }, this.#options.maxConnectionTime)
      this.#connectionTime.unref()
    }
  }

  /** Writes one event (see sendAll). */
  send (event: OutgoingEvent): Promise<void> | undefined {
    return this.sendAll([event])
  }

  /**
   * Writes events in one write. Returns undefined when the client can take more at once, else a
   * promise that settles once a slow client has taken the buffered output (or left, or was
   * detached). Nothing is written once the client is detached.
   */
  sendAll (events: readonly OutgoingEvent[]): Promise<void> | undefined {
    const stream = this.#stream
    if (stream === undefined || !this.attached) return undefined
    let text = ''
    let withId = false
    for (const event of events) {
      text += serializeEvent(event)
      if (event.id !== undefined) withId = true
    }
    const flowing = stream.write(text)
    this.#keepAlive?.refresh()
    if (withId) {
      this.#idSent = true
      if (this.#endAtNextId) {
        this.#pollingEnd()
        return undefined
      }
    }
    if (flowing || stream.destroyed) return undefined
    // Released by drain, by the stream closing, or by the client's detach (a client resumed elsewhere
    // leaves this one stalled: its writer must not wait on it).
    const detached = this.#detached.signal
    return new Promise<void>((resolve) => {
      const stalled = setTimeout(() => {
        this.#detach('client gone')
        this.#reply.raw.destroy()
      }, this.#options.retention)
      stalled.unref()
      const done = (): void => {
        clearTimeout(stalled)
        stream.off('drain', done)
        stream.off('close', done)
        detached.removeEventListener('abort', done)
        resolve()
      }
      stream.on('drain', done)
      stream.on('close', done)
      detached.addEventListener('abort', done, { once: true })
    })
  }

  /**
   * This response continues a stream whose last id the client already has (it sent it back): with
   * `maxConnectionTime` the response may end at once when the time is up, even with no new event.
   */
  continuesFromId (): void {
    this.#idSent = true
  }

  /** An SSE comment: it makes the response head leave now, and clients skip it. */
  comment (text: string): void {
    if (this.#stream !== undefined && this.attached) this.#stream.write(`: ${text}\n\n`)
  }

  /** The stream is complete: the response ends. */
  end (): void {
    if (this.#stream !== undefined && this.attached) this.#stream.end()
    this.#detach('ended')
  }

  /**
   * Another response now serves this stream's client (a resume, a newer GET): this one ends. Its
   * connection is closed rather than drained: it may be a dead one nobody reads any more.
   */
  takeOver (): void {
    const open = this.#stream !== undefined && this.attached
    this.#detach('taken over')
    if (open) this.#reply.raw.destroy()
  }

  #pollingEnd (): void {
    // A retry field alone dispatches no event; the client reconnects after it with Last-Event-ID.
    this.#stream?.end(`retry: ${POLLING_RETRY_MS}\n\n`)
    this.#detach('connection time')
  }

  #sendKeepAlive (): void {
    if (this.#stream === undefined || !this.attached) return
    this.#stream.write(KEEP_ALIVE)
    this.#keepAlive?.refresh()
  }

  #detach (reason: DetachReason): void {
    clearTimeout(this.#keepAlive)
    clearTimeout(this.#connectionTime)
    if (!this.#detached.signal.aborted) this.#detached.abort(reason)
  }
}
