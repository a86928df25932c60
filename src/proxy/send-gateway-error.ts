import type { FastifyReply } from 'fastify'
import { GatewayError, jsonRpcErrorBody } from '../errors.js'

/**
 * Answers with a coded error and a JSON-RPC error body. Edge refusals (4xx) carry `id: null`, as the
 * official SDK servers do for transport-level errors; failures while serving a request (5xx) echo
 * that request's id so a client can match the error to its call.
 */
export function sendGatewayError (reply: FastifyReply, error: GatewayError): void {
  if (reply.sent || reply.raw.headersSent) {
    // A stream already started cannot carry an HTTP error any more: end it so the client notices.
    reply.raw.destroy()
    return
  }
  const context = reply.request.mcp
  context.errorCode = error.code
  const id = error.statusCode >= 500 ? context.rpcId : null
  reply
    .code(error.statusCode)
    .header('content-type', 'application/json; charset=utf-8')
    .send(jsonRpcErrorBody(error, id))
}
