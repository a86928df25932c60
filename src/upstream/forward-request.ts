import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import { mediaType } from '../mcp/media-type.js'
import type { GatewayError } from '../errors.js'
import { sendGatewayError } from '../proxy/send-gateway-error.js'
import type { UpstreamClient } from './upstream-client.js'
import { upstreamFailure } from './upstream-failure.js'
import { rewriteUpstreamHeaders, upstreamRequestHeaders } from './upstream-headers.js'

/**
 * Told how long the upstream took to answer, and of each failure while talking to it: the
 * upstream's own are counted, the gateway's own (MCPGW_INTERNAL_ERROR) logged.
 */
export interface UpstreamObserver {
  upstreamResponded (seconds: number): void
  upstreamFailed (failure: GatewayError): void
}

/** The time until the upstream's answer: in the metrics and on the request's trace span. */
export function recordUpstreamTiming (request: FastifyRequest, observe: UpstreamObserver, started: number): void {
  const seconds = (performance.now() - started) / 1000
  observe.upstreamResponded(seconds)
  request.mcp.span?.setAttribute('mcp.upstream.duration_ms', Math.round(seconds * 100_000) / 100)
}

/**
 * Forwards the client's request, body unchanged, through the route's upstream pool (reply-from on
 * the pool of upstream-client.ts). The answer streams back as it comes (SSE event by event), its
 * OAuth challenge naming the gateway's metadata. A failure is answered by the one mapping of
 * upstream failures (upstream-failure.ts). `relayStream`, when given, takes a successful
 * uncompressed SSE answer instead (its status and headers already on the reply).
 *
 * reply-from calls these callbacks from the upstream client's own callback, outside the request's
 * promise chain: anything they throw would end the process. So each is guarded, and what fails there
 * is answered as a coded error of this request alone (the upstream's body dropped).
 */
export function forwardRequest (client: UpstreamClient, observe: UpstreamObserver, resourceMetadataUrl: () => string, request: FastifyRequest, reply: FastifyReply, relayStream?: (body: Readable) => void): FastifyReply {
  const body = request.body as Buffer | undefined
  const started = performance.now()
  let rewritten: IncomingHttpHeaders = {}
  let rewriteFailure: unknown
  return reply.from(client.path, {
    ...(body === undefined ? {} : { body, contentType: request.headers['content-type'] ?? 'application/json' }),
    rewriteRequestHeaders: upstreamRequestHeaders,
    rewriteHeaders: (headers) => {
      try {
        rewritten = rewriteUpstreamHeaders(headers, request.mcp.passCookies, resourceMetadataUrl)
      } catch (error) {
        rewriteFailure = error
      }
      return rewritten
    },
    onResponse: (_request, _reply, answer) => {
      try {
        if (rewriteFailure !== undefined) throw rewriteFailure
        recordUpstreamTiming(request, observe, started)
        if (relayStream !== undefined && isRelayableStream(reply)) relayStream(answer.stream as Readable)
        else reply.send(answer.stream)
      } catch (error) {
        ;(answer.stream as Readable).destroy()
        for (const name of Object.keys(rewritten)) reply.removeHeader(name)
        const failure = upstreamFailure(error)
        observe.upstreamFailed(failure)
        sendGatewayError(reply, failure)
      }
    },
    onError: (_reply, { error }) => {
      const failure = upstreamFailure(error)
      observe.upstreamFailed(failure)
      sendGatewayError(reply, failure)
    }
  })
}

/** A 2xx SSE answer whose bytes the gateway can read event by event (not compressed). */
export function isRelayableStream (reply: FastifyReply): boolean {
  const encoding = reply.getHeader('content-encoding')
  return reply.statusCode >= 200 && reply.statusCode <= 299 &&
    mediaType(reply.getHeader('content-type') as string | undefined) === 'text/event-stream' &&
    (encoding === undefined || encoding === 'identity')
}
