import type { FastifyReply } from 'fastify'
import { PassThrough } from 'node:stream'

/*
 * The answer to one bridged legacy POST. It starts as nothing: a request that needs nothing but its
 * result is answered with plain JSON; the moment there is something to say before the result (a
 * notification relayed from the upstream, an input request for the client) it becomes an SSE stream,
 * which every legacy client accepts (it sent `Accept: application/json, text/event-stream`).
 */
export class LegacyReply {
  readonly #reply: FastifyReply
  #stream: PassThrough | undefined

  constructor (reply: FastifyReply) {
    this.#reply = reply
  }

  /** Whether anything went out: an HTTP error can no longer be sent, only a JSON-RPC message. */
  get started (): boolean {
    return this.#stream !== undefined || this.#reply.sent
  }

  /**
   * One message on the SSE stream, opening the stream first. Resolves once the stream can take more:
   * at once, or after `drain` when a slow client let the buffer fill (or when the stream closed).
   * Callers await it before reading more from the upstream, so a slow reader slows the upstream
   * instead of growing the gateway's memory.
   */
  async event (message: unknown): Promise<void> {
    const stream = this.#open()
    if (stream.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`) || stream.destroyed) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        stream.off('drain', done)
        stream.off('close', done)
        resolve()
      }
      stream.on('drain', done)
      stream.on('close', done)
    })
  }

  /** The last message: JSON when nothing was streamed yet, else the stream's last event. */
  finish (message: unknown): void {
    if (this.#stream === undefined) {
      if (!this.#reply.sent) this.#reply.code(200).type('application/json').send(JSON.stringify(message))
      return
    }
    this.#stream.end(`event: message\ndata: ${JSON.stringify(message)}\n\n`)
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
    // An SSE comment: it makes the response headers leave now, and clients skip it.
    this.#open().write(': stream open\n\n')
  }

  #open (): PassThrough {
    if (this.#stream === undefined) {
      this.#stream = new PassThrough()
      this.#reply.code(200)
        .header('content-type', 'text/event-stream')
        .header('cache-control', 'no-cache')
        .header('x-accel-buffering', 'no')
        .send(this.#stream)
    }
    return this.#stream
  }
}
