import type { FastifyBaseLogger } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { GatewayError, jsonRpcErrorBody, type GatewayErrorCode } from '../errors.js'

/*
 * What Node's HTTP parser refuses before Fastify sees a request (malformed HTTP, a header section
 * over Node's 16 KiB, a request that took too long to arrive) is answered here, on the socket, as
 * every refusal is: a coded JSON-RPC error with an `x-request-id` (docs/errors.md), and the one
 * `request completed` line every request gets (docs/operating.md, "Logs"). Fastify's own answer has
 * neither, and writes a body even to a HEAD request.
 */

/** Node's `clientError` codes, as the gateway's. Anything else Node refuses is malformed HTTP. */
const CLIENT_ERROR_CODES: Readonly<Record<string, GatewayErrorCode>> = {
  HPE_HEADER_OVERFLOW: 'MCPGW_HEADERS_TOO_LARGE',
  ERR_HTTP_REQUEST_TIMEOUT: 'MCPGW_REQUEST_TIMEOUT'
}

/** Fastify's `clientErrorHandler`; `requestId` makes the id of the answer (as for any request). */
export function malformedRequestHandler (requestId: (request: IncomingMessage) => string, log: FastifyBaseLogger, logRequests: boolean): (error: Error, socket: Socket) => void {
  return (failure, socket) => {
    // Node's clientError: a parser error carries its code and the bytes it could not parse.
    const error = failure as Error & { code?: string, rawPacket?: unknown }
    // A connection reset or a socket gone: nobody to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const refusal = new GatewayError(CLIENT_ERROR_CODES[error.code ?? ''] ?? 'MCPGW_MALFORMED_HTTP')
    const body = JSON.stringify(jsonRpcErrorBody(refusal))
    // An answer to HEAD has no body (RFC 9110 §9.3.2): the client would read one as its next answer.
    const toHead = Buffer.isBuffer(error.rawPacket) && error.rawPacket.subarray(0, 5).toString('latin1') === 'HEAD '
    const id = requestId({ headers: {} } as IncomingMessage)
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${refusal.statusCode} ${statusText(refusal.statusCode)}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `x-request-id: ${id}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${toHead ? '' : body}`)
    }
    socket.destroy()
    if (logRequests) log.info({ reqId: id, status: refusal.statusCode, outcome: 'malformed HTTP', error: refusal.code }, 'request completed')
  }
}

/**
 * Node's `checkExpectation`: an `Expect` other than `100-continue`, answered 417 (RFC 9110 §10.1.1)
 * as a coded error; Node's own answer has no body and no request id.
 */
export function unmetExpectationHandler (requestId: (request: IncomingMessage) => string, log: FastifyBaseLogger, logRequests: boolean): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const refusal = new GatewayError('MCPGW_EXPECTATION_FAILED')
    const id = requestId(request)
    const body = JSON.stringify(jsonRpcErrorBody(refusal))
    response.writeHead(refusal.statusCode, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-request-id': id, connection: 'close' })
    response.end(request.method === 'HEAD' ? undefined : body)
    if (logRequests) log.info({ reqId: id, httpMethod: request.method, status: refusal.statusCode, error: refusal.code }, 'request completed')
  }
}

function statusText (status: number): string {
  return status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'
}
