import type { FastifyInstance } from 'fastify'
import type { Socket } from 'node:net'
import { GatewayError } from '../errors.js'

/*
 * Keep-alive connections must not hold a shutdown open (docs/operating.md, "Shutdown"). `close()`
 * stops listening and Node closes the connections that are idle at that moment, but:
 *
 * - a connection busy with a request in flight becomes idle only later, and would then stay open for
 *   the whole keep-alive timeout;
 * - a connection that has not sent a byte yet (a client's pre-connected spare) counts as waiting for
 *   a request, not as idle, and stays open until the client closes it;
 *
 * so `close()` would wait for `shutdownGrace`. Once closing has begun:
 *
 * - connections that have sent nothing are closed;
 * - every answer not yet sent says `Connection: close` (RFC 9112, section 9.6), so the client does
 *   not send another request on that connection and Node closes it after the answer;
 * - when an answer finishes (a stream whose headers went out with keep-alive before closing began),
 *   the connections that are then idle are closed.
 *
 * Requests that still arrive on an open connection are answered 503 MCPGW_SHUTTING_DOWN with
 * `Connection: close`: a coded error like every refusal, from a hook registered after the one that
 * gives each request its context and `x-request-id` (Fastify's own `return503OnClosing` answer has
 * neither, so it is off).
 */
export function closeConnectionsWhenDraining (app: FastifyInstance): void {
  let draining = false
  const connections = new Set<Socket>()
  app.server.on('connection', function trackConnection (socket: Socket) {
    connections.add(socket)
    socket.once('close', () => connections.delete(socket))
  })
  app.addHook('preClose', function startDraining (done) {
    draining = true
    for (const socket of connections) {
      if (socket.bytesRead === 0) socket.destroy()
    }
    done()
  })
  app.addHook('onRequest', async function refuseWhenDraining () {
    if (draining) throw new GatewayError('MCPGW_SHUTTING_DOWN')
  })
  app.addHook('onSend', function askClientToCloseWhenDraining (_request, reply, payload, done) {
    if (draining) reply.header('connection', 'close')
    done(null, payload)
  })
  app.addHook('onResponse', function closeIdleConnectionsWhenDraining (_request, _reply, done) {
    if (draining) app.server.closeIdleConnections()
    done()
  })
}
