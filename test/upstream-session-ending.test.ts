import t from 'tap'
import { pino } from 'pino'
import { createServer, type Server } from 'node:http'
import { MemorySessionStore } from '../src/sessions/memory-session-store.js'
import { UpstreamInstances, type UpstreamInstance } from '../src/stateful/upstream-instances.js'
import { UpstreamSessionEnding } from '../src/stateful/upstream-session-ending.js'
import { eventually } from './helpers/eventually.js'
import { freePort } from './helpers/redis-server.js'

/*
 * Upstream sessions nobody uses are ended (docs/stateful-upstreams.md, "Ending"): a DELETE that
 * cannot reach its instance is sent again until the instance is back; one the instance refuses is
 * not. A local HTTP server plays the instance: down first, then up on the same port.
 */

async function listen (port: number, deleted: Array<{ id: string, authorization: string | undefined }>, status: number): Promise<Server> {
  const server = createServer((request, response) => {
    deleted.push({ id: String(request.headers['mcp-session-id']), authorization: request.headers.authorization })
    response.writeHead(status).end()
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return server
}

async function stop (server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** The one instance at `port`, and the ending that retries every `retryEvery` ms; all closed at teardown. */
function endingFor (t: { teardown: (fn: () => unknown) => void }, port: number, retryEvery: number): { instance: UpstreamInstance, ending: UpstreamSessionEnding } {
  const store = new MemorySessionStore({ idleTimeout: 60_000, maxLifetime: 3_600_000 })
  const instances = new UpstreamInstances({
    urls: [`http://127.0.0.1:${port}/mcp`], balance: 'roundRobin', route: '/mcp', store, headersTimeout: 1_000, maxResponseBytes: 1024, healthCheck: null, onHealthChanged: () => {}
  })
  const ending = new UpstreamSessionEnding(pino({ level: 'silent' }), { retryEvery })
  t.teardown(async () => {
    ending.close()
    await instances.close()
    await store.close()
  })
  const [instance] = instances.all
  if (instance === undefined) throw new Error('no instance')
  return { instance, ending }
}

t.test('a DELETE that cannot reach its instance is sent again once the instance is back, in the client\'s name', async (t) => {
  const port = await freePort()
  const { instance, ending } = endingFor(t, port, 50)
  await ending.end(instance, { instance: instance.key, sessionId: 'lost-1' }, { authorization: 'Bearer alice' }, 'test')
  await ending.end(instance, { instance: instance.key, sessionId: '' }, {}, 'test')
  const deleted: Array<{ id: string, authorization: string | undefined }> = []
  const server = await listen(port, deleted, 200)
  t.teardown(async () => { await stop(server) })
  await eventually(() => deleted.length > 0, { timeout: 5_000, description: 'the DELETE to be sent again' })
  t.same(deleted, [{ id: 'lost-1', authorization: 'Bearer alice' }], 'once, with the headers it was first sent with; a session without an id is not sent')
})

t.test('a DELETE the instance refuses is not sent again', async (t) => {
  const port = await freePort()
  const deleted: Array<{ id: string, authorization: string | undefined }> = []
  const server = await listen(port, deleted, 401)
  t.teardown(async () => { await stop(server) })
  const { instance, ending } = endingFor(t, port, 20)
  await ending.end(instance, { instance: instance.key, sessionId: 'refused' }, {}, 'test')
  await eventually(() => deleted.length > 0, { timeout: 5_000, description: 'the DELETE' })
  // Proving that nothing more comes: ten retry intervals pass with nothing sent (a fixed sleep, docs/testing.md).
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(deleted.map(({ id }) => id), ['refused'], 'asked once')
})
