import type { FastifyReply, FastifyRequest } from 'fastify'
import { shortSessionId } from '../sessions/session-id.js'
import { rpcMethodLabel, type GatewayMetrics } from './metrics.js'

/*
 * Every request is completed exactly once (docs/operating.md, "Logs"): one log line, one count in
 * `mcpgw_requests_total` and the end of its trace span. Fastify's onResponse runs when the response
 * finished; when the connection closes first (the client left mid-stream, or the gateway cut the
 * response short), only the response's 'close' event comes, so that is watched too. Both can happen
 * for one request (a response that errors runs onResponse, then closes): the first one wins.
 */

/** The client closed the connection before the whole response was sent. */
export const CLIENT_ABORTED = 'client aborted'
/** The gateway closed the connection before the whole response was sent (upstream failure mid-stream, shutdownGrace elapsed). */
export const RESPONSE_CUT_SHORT = 'response cut short'

type RequestCounter = ReturnType<GatewayMetrics['requests']['labels']>

export interface RequestRecorder {
  /** From an onRequest hook: completes the request as aborted if its response closes unfinished. */
  watchForAbort (request: FastifyRequest, reply: FastifyReply): void
  /** From the onResponse hook: completes the request as answered. */
  finished (request: FastifyRequest, reply: FastifyReply): void
}

/** Whether the client is the one who left: it sent its FIN, or reset the connection. */
function clientLeft (request: FastifyRequest): boolean {
  const socket = request.raw.socket
  return socket.readableEnded || socket.errored !== null
}

export function createRequestRecorder (metrics: GatewayMetrics, logRequests: boolean): RequestRecorder {
  // Label children cached by their (bounded) label values: no label hashing per request.
  const requestCounters = new Map<string, RequestCounter>()
  const requestCounter = (route: string, status: number, rpcMethod: string): RequestCounter => {
    const key = `${route} ${status} ${rpcMethod}`
    let counter = requestCounters.get(key)
    if (counter === undefined) {
      counter = metrics.requests.labels({ route, status: String(status), rpc_method: rpcMethod })
      requestCounters.set(key, counter)
    }
    return counter
  }

  function complete (request: FastifyRequest, reply: FastifyReply, abortedBy: string | undefined): void {
    const context = request.mcp
    if (context.completed) return
    context.completed = true
    // The status that went out; 0 when the connection closed before any response headers did.
    const status = abortedBy === undefined || reply.raw.headersSent ? reply.statusCode : 0
    if (abortedBy !== undefined) {
      // What happened to the session is kept: an initialize cut short may still have minted one.
      context.outcome = context.outcome === undefined ? abortedBy : `${context.outcome}; ${abortedBy}`
    }
    if (logRequests) {
      request.log.info({
        route: context.route,
        httpMethod: request.method,
        rpcMethod: context.rpcMethod,
        era: context.era,
        status,
        durationMs: Math.round(reply.elapsedTime * 100) / 100,
        session: context.sessionId === undefined ? undefined : shortSessionId(context.sessionId),
        principal: context.principal?.slice(0, 8),
        outcome: context.outcome,
        aborted: abortedBy === undefined ? undefined : true,
        error: context.errorCode
      }, 'request completed')
    }
    requestCounter(context.route ?? 'unmatched', status, rpcMethodLabel(context.rpcMethod)).inc()
    if (status >= 400 && status < 500 && context.errorCode !== undefined) metrics.refusals.inc({ status: String(status), cause: context.errorCode })
    const span = context.span
    if (span !== undefined) {
      if (context.rpcMethod !== undefined) span.setAttribute('mcp.method', context.rpcMethod)
      span.setAttribute('mcp.era', context.era)
      if (context.outcome !== undefined) span.setAttribute('mcp.session.outcome', context.outcome)
      if (context.errorCode !== undefined) span.setAttribute('mcp.gateway.error', context.errorCode)
      span.end(status)
    }
  }

  return {
    watchForAbort (request, reply) {
      const response = reply.raw
      response.once('close', function completeIfUnfinished () {
        if (!response.writableFinished) complete(request, reply, clientLeft(request) ? CLIENT_ABORTED : RESPONSE_CUT_SHORT)
      })
    },
    finished (request, reply) {
      complete(request, reply, undefined)
    }
  }
}
