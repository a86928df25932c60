import { StringDecoder } from 'node:string_decoder'
import { GatewayError } from '../errors.js'

/** One dispatched Server-Sent Event (only the fields the gateway reads). */
export interface SseEvent {
  readonly event: string
  readonly data: string
  /** The `id` field, when the event had one. */
  readonly id?: string
  /** The `retry` field (milliseconds), when the event had a valid one. */
  readonly retry?: number
}

/**
 * Incremental parser for `text/event-stream` (WHATWG HTML, "Server-sent events", §9.2.6): lines end
 * in CRLF, LF or CR; an empty line dispatches the event; `data` lines join with LF; one space after
 * the colon is dropped; lines starting with a colon are comments. Chunks may split anywhere, even
 * inside a UTF-8 character or between CR and LF.
 */
export class SseParser {
  readonly #decoder = new StringDecoder('utf8')
  #pending = ''
  #eventType = ''
  #id: string | undefined
  #retry: number | undefined
  #dataLines: string[] = []
  #dataLength = 0
  #skipLeadingLineFeed = false
  readonly #maxEventLength: number

  /**
   * `maxEventLength`: the most characters one event (its data, or a line still being read) may
   * hold; past it, push throws MCPGW_UPSTREAM_RESPONSE_TOO_LARGE instead of buffering on.
   */
  constructor (maxEventLength = Number.POSITIVE_INFINITY) {
    this.#maxEventLength = maxEventLength
  }

  push (chunk: Buffer): SseEvent[] {
    let text = this.#decoder.write(chunk)
    if (this.#skipLeadingLineFeed && text.startsWith('\n')) text = text.slice(1)
    this.#skipLeadingLineFeed = false
    const events: SseEvent[] = []
    let buffer = this.#pending + text
    let lineEnd: number
    while ((lineEnd = buffer.search(/[\r\n]/)) !== -1) {
      const line = buffer.slice(0, lineEnd)
      let next = lineEnd + 1
      if (buffer[lineEnd] === '\r') {
        if (next === buffer.length) this.#skipLeadingLineFeed = true
        else if (buffer[next] === '\n') next += 1
      }
      buffer = buffer.slice(next)
      const event = this.#processLine(line)
      if (event !== undefined) events.push(event)
    }
    this.#pending = buffer
    if (this.#pending.length + this.#dataLength > this.#maxEventLength) this.#tooLarge()
    return events
  }

  #tooLarge (): never {
    this.#pending = ''
    this.#dataLines = []
    this.#dataLength = 0
    throw new GatewayError('MCPGW_UPSTREAM_RESPONSE_TOO_LARGE', { detail: `an SSE event over ${this.#maxEventLength}` })
  }

  #processLine (line: string): SseEvent | undefined {
    if (line === '') {
      const id = this.#id
      const retry = this.#retry
      this.#id = undefined
      this.#retry = undefined
      if (this.#dataLines.length === 0) {
        this.#eventType = ''
        return undefined
      }
      const event: SseEvent = {
        event: this.#eventType === '' ? 'message' : this.#eventType,
        data: this.#dataLines.join('\n'),
        ...(id === undefined ? {} : { id }),
        ...(retry === undefined ? {} : { retry })
      }
      this.#eventType = ''
      this.#dataLines = []
      this.#dataLength = 0
      return event
    }
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') {
      this.#dataLines.push(value)
      this.#dataLength += value.length + 1
      if (this.#dataLength > this.#maxEventLength) this.#tooLarge()
    }
    else if (field === 'event') this.#eventType = value
    else if (field === 'id' && !value.includes('\0')) this.#id = value
    else if (field === 'retry' && /^[0-9]+$/.test(value)) this.#retry = Number(value)
    return undefined
  }
}
