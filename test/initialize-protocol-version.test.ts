import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { eventually } from './helpers/eventually.js'
import { withGateway, withRedis, type Teardown } from './helpers/fixtures.js'
import { initializeRequest, post } from './helpers/mcp-http.js'

/*
 * An initialize result mints a session only when its protocolVersion is one the gateway knows (a
 * legacy revision, src/mcp/protocol-versions.ts): the version is stored with the session, so an
 * unknown or huge one must never reach Redis. The answer still goes back to the client unchanged,
 * as any answer that mints nothing; on a stateful route the upstream session it opened is ended.
 */

const HUGE_VERSION = 'x'.repeat(5 * 1024 * 1024)

interface VersionUpstream {
  readonly url: string
  /** The upstream session ids ended by a DELETE. */
  readonly deleted: string[]
}

/** A node:http upstream answering initialize with a result carrying `version`, in JSON or SSE, and a session id of its own. */
async function withVersionUpstream (t: Teardown, version: string, responseMode: 'json' | 'sse'): Promise<VersionUpstream> {
  const deleted: string[] = []
  let opened = 0
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      if (request.method === 'DELETE') {
        deleted.push(String(request.headers['mcp-session-id']))
        response.writeHead(200).end()
        return
      }
      const message = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { id?: unknown }
      const result = JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { protocolVersion: version, capabilities: {}, serverInfo: { name: 'versions', version: '1' } } })
      const headers = { 'mcp-session-id': `upstream-${++opened}` }
      if (responseMode === 'json') response.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(result)
      else response.writeHead(200, { ...headers, 'content-type': 'text/event-stream' }).end(`event: message\ndata: ${result}\n\n`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, deleted }
}

const cases = [
  { name: 'an unknown version', version: '2099-01-01', responseMode: 'json' },
  { name: 'an unknown version in SSE', version: '1.0', responseMode: 'sse' },
  { name: 'a 5 MB version', version: HUGE_VERSION, responseMode: 'json' },
  { name: 'a 5 MB version in SSE', version: HUGE_VERSION, responseMode: 'sse' }
] as const

t.test('an initialize result with a version the gateway does not know mints nothing and stores nothing', async (t) => {
  const redis = await withRedis(t)
  for (const { name, version, responseMode } of cases) {
    const stateless = await withVersionUpstream(t, version, responseMode)
    const stateful = await withVersionUpstream(t, version, responseMode)
    const gateway = await withGateway(t, {
      config: {
        redis: { url: redis.url, keyPrefix: 'versions:' },
        routes: [
          { path: '/mcp', upstream: stateless.url },
          { path: '/stateful', upstream: [stateful.url], upstreamSessions: true }
        ]
      }
    })
    for (const path of ['/mcp', '/stateful']) {
      const answer = await post(`${gateway.origin}${path}`, initializeRequest(1))
      t.equal(answer.status, 200, `${name}, ${path}: the upstream's status`)
      t.equal(answer.headers.get('mcp-session-id'), null, `${name}, ${path}: no session minted`)
      t.ok(answer.text.includes(version), `${name}, ${path}: the answer goes back unchanged`)
    }
    t.same(await redis.client().keys('versions:*'), [], `${name}: nothing in Redis`)
    // The end is sent after the answer, not waited for by the client.
    await eventually(() => stateful.deleted.includes('upstream-1'), { timeout: 15_000, description: 'the upstream session to be ended' })
    t.same(stateful.deleted, ['upstream-1'], `${name}: the upstream session the stateful route opened is ended`)
    await gateway.close()
  }
  const memory = Number(/used_memory:(\d+)/.exec(await redis.client().info('memory'))?.[1])
  t.ok(memory < 4 * 1024 * 1024, `Redis holds no copy of a 5 MB version (used_memory ${memory})`)
})

t.test('every legacy version the gateway knows still mints', async (t) => {
  for (const version of ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05']) {
    const upstream = await withVersionUpstream(t, version, 'json')
    const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
    const answer = await post(`${gateway.origin}/mcp`, initializeRequest(1, version))
    t.equal(answer.status, 200)
    const sessionId = answer.headers.get('mcp-session-id')
    t.ok(sessionId !== null, `${version}: minted`)
    t.equal((await gateway.app.sessionStore.get(sessionId ?? ''))?.protocolVersion, version)
  }
})
