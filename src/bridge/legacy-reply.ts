import type { FastifyReply } from 'fastify'
import type { RecordedStream } from '../streams/recorded-stream.js'

/*
 * The answer to one bridged legacy request. It starts as nothing: a request that needs nothing but
 * its result is answered with plain JSON; the moment there is something to say before the result (a
 * notification relayed from the upstream, an input request for the client) it becomes an SSE stream,
 * which every legacy client accepts (it sent `Accept: application/json, text/event-stream`). The
 * stream is a recorded one (docs/streams.md): ids, kept for resumption, keep-alive.
 */
export class LegacyReply {
  readonly #reply: FastifyReply
  readonly #makeStream: () => RecordedStream
  #stream: RecordedStream | undefined
  readonly #stopped = new AbortController()

  /** `makeStream`: the session's recorded stream, made when the answer becomes a stream. */
  constructor (reply: FastifyReply, makeStream: () => RecordedStream) {
    this.#reply = reply
    this.#makeStream = makeStream
    // Before anything was streamed there is nothing to resume: a client that leaves ends the call.
    reply.raw.once('close', () => {
      if (this.#stream === undefined && !reply.raw.writableFinished) this.#stopped.abort('client gone')
    })
  }

  /**
   * Aborts when the call should stop: the client left before anything was streamed, or the stream
   * was stopped (the session ended, nobody resumed it within retention, a newer GET took over, or,
   * without resumable streams, the client left).
   */
  get stopped (): AbortSignal {
    return this.#stopped.signal
  }

  /** Whether anything went out: an HTTP error can no longer be sent, only a JSON-RPC message. */
  get started (): boolean {
    return this.#stream !== undefined || this.#reply.sent
  }

  /**
   * One message on the SSE stream, opening the stream first. Resolves once the stream can take more
   * (after `drain` when a slow client let the buffer fill). Callers await it before reading more from
   * the upstream, so a slow reader slows the upstream instead of growing the gateway's memory.
   */
  async event (message: unknown): Promise<void> {
    await this.#open().event({ data: JSON.stringify(message) })
  }

  /** The last message: JSON when nothing was streamed yet, else the stream's last event. */
  finish (message: unknown): void {
    if (this.#stream === undefined) {
      if (!this.#reply.sent) this.#reply.code(200).type('application/json').send(JSON.stringify(message))
      return
    }
    // Written (and kept) before the end: event() does both before its first wait.
    void this.#stream.event({ data: JSON.stringify(message) })
    this.#stream.end()
  }

  /** An upstream HTTP error before anything was streamed: passed back as it came. */
  upstreamError (statusCode: number, headers: { readonly 'content-type'?: string | string[] | undefined, readonly 'www-authenticate'?: string | string[] | undefined }, body: string): void {
    this.#reply.code(statusCode)
    for (const name of ['content-type', 'www-authenticate'] as const) {
      const value = headers[name]
      if (value !== undefined) this.#reply.header(name, value)
    }
    this.#reply.send(body)
  }

  /** Ends without a response (a cancelled request gets none): an empty stream when none was open. */
  end (): void {
    if (this.#reply.sent && this.#stream === undefined) return
    this.#open().end()
  }

  /** Opens the stream before there is anything to say (a GET stream), so the client sees it at once. */
  open (): void {
    this.#open()
  }

  #open (): RecordedStream {
    if (this.#stream === undefined) {
      const stream = this.#makeStream()
      this.#stream = stream
      stream.start()
      const onStopped = (): void => { this.#stopped.abort(stream.stopped.reason) }
      if (stream.stopped.aborted) onStopped()
      else stream.stopped.addEventListener('abort', onStopped, { once: true })
    }
    return this.#stream
  }
}
