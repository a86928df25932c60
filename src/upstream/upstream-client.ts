import type { IncomingHttpHeaders } from 'node:http'
import { Pool, type Dispatcher } from 'undici'

/*
 * The one HTTP client of a route's upstream: one undici pool, used by reply-from for forwarded
 * requests and directly for the requests the era bridge makes itself (docs/architecture.md,
 * "The upstream module"). `headersTimeout` is the route's `timeout`: it bounds the wait for an
 * answer (504); a body may then stream for as long as it lasts (SSE), so there is no body timeout.
 */

export interface UpstreamAnswer {
  readonly statusCode: number
  readonly headers: IncomingHttpHeaders
  /** Read it, or destroy it: an unread body holds its connection. */
  readonly body: Dispatcher.ResponseData['body']
}

function ignoreBodyError (): void {}

/**
 * Calls `heard` for every response head and body chunk of every request the dispatcher carries,
 * then hands them on untouched: bytes from the upstream, whoever reads them (or later).
 */
function signsOfLife (heard: () => void): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) => dispatch(options, {
    onRequestStart: (controller, context) => handler.onRequestStart?.(controller, context),
    onRequestUpgrade: (controller, statusCode, headers, socket) => handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
    onResponseStart: (controller, statusCode, headers, statusMessage) => {
      heard()
      handler.onResponseStart?.(controller, statusCode, headers, statusMessage)
    },
    onResponseData: (controller, chunk) => {
      heard()
      handler.onResponseData?.(controller, chunk)
    },
    onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
    onResponseError: (controller, error) => handler.onResponseError?.(controller, error)
  })
}

/** A 2xx answer: the only kind the gateway reads as the upstream's answer rather than passing it back. */
export function isSuccessStatus (statusCode: number): boolean {
  return statusCode >= 200 && statusCode <= 299
}

export class UpstreamClient {
  /** The upstream URL's origin, for reply-from's `base`. */
  readonly origin: string
  /** Its host (and port): the Host header of forwarded requests. */
  readonly host: string
  /** Path and query of the upstream URL: where every request goes. */
  readonly path: string
  readonly pool: Pool
  /** limits.maxResponseBytes: the most the gateway holds of one answer (a JSON body, one SSE event). */
  readonly maxResponseBytes: number
  /** What this client's own requests go through: the pool, seen by `onSignOfLife` when given. */
  readonly #requests: Dispatcher
  #closed = false

  /**
   * `onSignOfLife`: called for every response head and body chunk of the requests this client makes
   * itself (not reply-from's): a stateful instance's health counts them (docs/stateful-upstreams.md, "Health").
   */
  constructor (upstream: string, headersTimeout: number, maxResponseBytes: number, onSignOfLife?: () => void) {
    const url = new URL(upstream)
    this.origin = url.origin
    this.host = url.host
    this.path = url.pathname + url.search
    this.maxResponseBytes = maxResponseBytes
    this.pool = new Pool(url.origin, { headersTimeout, bodyTimeout: 0 })
    this.#requests = onSignOfLife === undefined ? this.pool : this.pool.compose(signsOfLife(onSignOfLife))
  }

  /** POSTs a JSON body of the gateway's own making; `signal` aborts the request and its body. */
  async post (headers: Record<string, string>, body: string, signal: AbortSignal): Promise<UpstreamAnswer> {
    return await this.postBytes({ ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body, signal)
  }

  /** POSTs a body as it is, with the headers as they are (a forwarded request the gateway reads the answer of); without `signal` only `timeout` bounds the wait. */
  async postBytes (headers: IncomingHttpHeaders, body: string | Buffer, signal?: AbortSignal): Promise<UpstreamAnswer> {
    const { statusCode, headers: responseHeaders, body: responseBody } = await this.#requests.request({ path: this.path, method: 'POST', headers, body, signal })
    // A body destroyed or aborted while nobody reads it emits 'error'; unheard, that would end the
    // process. Readers still get the error through their own listeners or iterators.
    responseBody.on('error', ignoreBodyError)
    return { statusCode, headers: responseHeaders, body: responseBody }
  }

  /** GETs the upstream's standalone SSE stream with a forwarded request's headers. */
  async getStream (headers: IncomingHttpHeaders, signal: AbortSignal): Promise<UpstreamAnswer> {
    const { statusCode, headers: responseHeaders, body } = await this.#requests.request({ path: this.path, method: 'GET', headers, signal })
    body.on('error', ignoreBodyError)
    return { statusCode, headers: responseHeaders, body }
  }

  /** DELETEs an upstream session (the session id is among `headers`): a stateful upstream's end. */
  async delete (headers: IncomingHttpHeaders, signal: AbortSignal): Promise<UpstreamAnswer> {
    const { statusCode, headers: responseHeaders, body } = await this.#requests.request({ path: this.path, method: 'DELETE', headers, signal })
    body.on('error', ignoreBodyError)
    return { statusCode, headers: responseHeaders, body }
  }

  /** GETs another path of the upstream's origin (its OAuth metadata). */
  async get (path: string, signal: AbortSignal): Promise<UpstreamAnswer> {
    const { statusCode, headers, body } = await this.#requests.request({ path, method: 'GET', headers: { accept: 'application/json' }, signal })
    body.on('error', ignoreBodyError)
    return { statusCode, headers, body }
  }

  /** Closes every connection, streams in flight included (the gateway's shutdown grace came first). */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.pool.destroy()
  }
}
