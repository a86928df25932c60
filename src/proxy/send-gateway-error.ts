import type { FastifyReply } from 'fastify'
import { GatewayError, jsonRpcErrorBody } from '../errors.js'

/** Answers with a coded error and a JSON-RPC error body (the `id` follows the error's id policy). */
export function sendGatewayError (reply: FastifyReply, error: GatewayError): void {
  if (reply.sent || reply.raw.headersSent) {
    // A stream already started cannot carry an HTTP error any more: end it so the client notices.
    reply.raw.destroy()
    return
  }
  const context = reply.request.mcp
  context.errorCode = error.code
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value)
  reply
    .code(error.statusCode)
    .header('content-type', 'application/json; charset=utf-8')
    .send(jsonRpcErrorBody(error, context.rpcId))
}
