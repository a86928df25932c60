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

const CARRIAGE_RETURN = 13
const LINE_FEED = 10

/**
 * Incremental parser for `text/event-stream` (WHATWG HTML, "Server-sent events", §9.2.6): lines end
 * in CRLF, LF or CR; an empty line dispatches the event; `data` lines join with LF; one space after
 * the colon is dropped; lines starting with a colon are comments. Chunks may split anywhere, even
 * inside a UTF-8 character or between CR and LF.
 *
 * The work is linear in the bytes pushed, however the chunks split them (docs/performance.md, "SSE
 * parsing"): each chunk is searched once, from where the last line ended, and a line that spans
 * chunks is kept as its pieces and joined once, when its end arrives. A large event arrives one TCP
 * segment at a time; joining the pending line with every chunk and searching it again was quadratic.
 */
export class SseParser {
  readonly #decoder = new StringDecoder('utf8')
  /** The pieces of the line not yet ended, in order, and their total length. */
  #pending: string[] = []
  #pendingLength = 0
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
    const text = this.#decoder.write(chunk)
    const events: SseEvent[] = []
    let lineStart = 0
    // A CR ended the last chunk: an LF that starts this one belongs to it (CRLF). An empty chunk decides nothing.
    if (this.#skipLeadingLineFeed && text.length > 0) {
      this.#skipLeadingLineFeed = false
      if (text.charCodeAt(0) === LINE_FEED) lineStart = 1
    }
    // The next CR and the next LF at or after lineStart (-1: none left); each is searched for again
    // only once a line end passed it, so no character is searched twice.
    let nextCarriageReturn = text.indexOf('\r', lineStart)
    let nextLineFeed = text.indexOf('\n', lineStart)
    while (nextCarriageReturn !== -1 || nextLineFeed !== -1) {
      const lineEnd = nextCarriageReturn === -1 || (nextLineFeed !== -1 && nextLineFeed < nextCarriageReturn) ? nextLineFeed : nextCarriageReturn
      let next = lineEnd + 1
      if (text.charCodeAt(lineEnd) === CARRIAGE_RETURN) {
        if (next === text.length) this.#skipLeadingLineFeed = true
        else if (text.charCodeAt(next) === LINE_FEED) next += 1
      }
      const line = this.#completeLine(text.slice(lineStart, lineEnd))
      lineStart = next
      if (nextCarriageReturn !== -1 && nextCarriageReturn < lineStart) nextCarriageReturn = text.indexOf('\r', lineStart)
      if (nextLineFeed !== -1 && nextLineFeed < lineStart) nextLineFeed = text.indexOf('\n', lineStart)
      const event = this.#processLine(line)
      if (event !== undefined) events.push(event)
    }
    if (lineStart < text.length) {
      this.#pending.push(lineStart === 0 ? text : text.slice(lineStart))
      this.#pendingLength += text.length - lineStart
    }
    if (this.#pendingLength + this.#dataLength > this.#maxEventLength) this.#tooLarge()
    return events
  }

  /** The whole line whose last piece is `end`: the pieces held for it are joined here, once. */
  #completeLine (end: string): string {
    if (this.#pending.length === 0) return end
    this.#pending.push(end)
    const line = this.#pending.join('')
    this.#pending = []
    this.#pendingLength = 0
    return line
  }

  #tooLarge (): never {
    this.#pending = []
    this.#pendingLength = 0
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
