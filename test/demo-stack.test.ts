import t from 'tap'
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { parse as parseYaml } from 'yaml'
import { loadConfig } from '../src/config/load-config.js'
import { buildGateway } from '../src/gateway.js'
import { withRedis, withUpstream } from './helpers/fixtures.js'
import { initializeRequest } from './helpers/mcp-http.js'

/*
 * The shipped container setup defends against DNS rebinding (docs/security.md): docker-compose.yml
 * publishes on the loopback interface only, and config/gateway.yaml, which listens on 0.0.0.0,
 * allows only localhost names (and PUBLIC_HOSTNAME) in Host and Origin.
 */

interface Answer { readonly status: number }

/** A POST with a Host header of our choosing (fetch does not let a caller set Host). */
async function postWithHost (port: number, host: string, headers: Record<string, string> = {}): Promise<Answer> {
  const body = JSON.stringify(initializeRequest(1))
  return await new Promise((resolve, reject) => {
    const sent = httpRequest({
      host: '127.0.0.1',
      port,
      path: '/mcp',
      method: 'POST',
      headers: { host, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body), ...headers },
      timeout: 10_000
    }, (response) => {
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode ?? 0 }))
    })
    sent.on('error', reject)
    sent.end(body)
  })
}

t.test('docker-compose.yml publishes ports on 127.0.0.1 only', async (t) => {
  const compose = parseYaml(await readFile('docker-compose.yml', 'utf8')) as { services: Record<string, { ports?: string[] }> }
  const published = Object.entries(compose.services).flatMap(([name, service]) => (service.ports ?? []).map((port) => ({ name, port: String(port) })))
  t.ok(published.length > 0, 'something is published')
  for (const { name, port } of published) t.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${name}: ${port}`)
})

t.test('config/gateway.yaml on 0.0.0.0 accepts localhost and PUBLIC_HOSTNAME, refuses other Host and Origin', async (t) => {
  const redis = await withRedis(t)
  const upstream = await withUpstream(t, { responseMode: 'json' })
  const config = await loadConfig('config/gateway.yaml', { REDIS_URL: redis.url, UPSTREAM_URL: upstream.url, PORT: '0', PUBLIC_HOSTNAME: 'mcp.example.com' })
  t.equal(config.listen.host, '0.0.0.0', 'the shipped file listens on every interface, as in a container')
  const app = await buildGateway(config, { env: {}, logDestination: new Writable({ write (_chunk, _encoding, callback) { callback() } }) })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port

  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'mcp.example.com']) {
    t.equal((await postWithHost(port, host)).status, 200, `Host ${host}`)
  }
  t.equal((await postWithHost(port, 'localhost', { origin: 'http://localhost:5173' })).status, 200, 'a local page')
  t.equal((await postWithHost(port, 'evil.example')).status, 403, 'a rebound name in Host')
  t.equal((await postWithHost(port, `localhost:${port}`, { origin: 'http://evil.example' })).status, 403, 'a foreign page')
})

t.test('config/gateway.yaml without PUBLIC_HOSTNAME allows localhost only', async (t) => {
  const config = await loadConfig('config/gateway.yaml', {})
  t.same(config.security.allowedHosts, ['localhost', '127.0.0.1', '[::1]', 'localhost'])
  t.same(config.security.allowedOrigins, ['localhost', '127.0.0.1', '[::1]', 'localhost'])
})
