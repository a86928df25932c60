import t from 'tap'
import { connect } from 'node:net'
import { withGateway, withUpstream } from './helpers/fixtures.js'

/*
 * What Node's HTTP parser refuses before any route sees it is answered like every refusal
 * (docs/errors.md): a coded JSON-RPC error with x-request-id, Connection: close, no body to HEAD,
 * and its one log line.
 */

/** Writes raw bytes and reads everything the gateway answers until it closes the connection. */
async function raw (port: number, bytes: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { received += chunk })
    socket.on('close', () => { resolve(received) })
    socket.on('error', reject)
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')))
    socket.end(bytes)
  })
}

function bodyOf (answer: string): unknown {
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4)
  return body === '' ? undefined : JSON.parse(body)
}

t.test('malformed HTTP, headers over 16 KiB: coded errors on the socket', async (t) => {
  const upstream = await withUpstream(t)
  const gateway = await withGateway(t, { config: { routes: [{ path: '/mcp', upstream: upstream.url }] } })
  const port = Number(new URL(gateway.origin).port)
  const big = 'y'.repeat(17_000)

  const unknownMethod = await raw(port, 'CONNECTX /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  t.match(unknownMethod, /^HTTP\/1\.1 400 Bad Request\r\n/)
  t.match(unknownMethod, /\r\nx-request-id: \S+\r\n/i)
  t.match(unknownMethod, /\r\nConnection: close\r\n/i)
  t.match(bodyOf(unknownMethod), { jsonrpc: '2.0', id: null, error: { code: -32600, message: /not well-formed HTTP/ } })

  const tooLarge = await raw(port, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Host: ${big}\r\n\r\n`)
  t.match(tooLarge, /^HTTP\/1\.1 431 /)
  t.match(bodyOf(tooLarge), { error: { code: -32600, message: /Request Header Fields Too Large/ } })

  const toHead = await raw(port, `HEAD /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Host: ${big}\r\n\r\n`)
  t.match(toHead, /^HTTP\/1\.1 431 /)
  t.equal(bodyOf(toHead), undefined, 'no body to HEAD: the client would read it as its next answer')

  const noHost = await raw(port, 'POST /mcp HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}')
  t.match(noHost, /^HTTP\/1\.1 400 /, 'HTTP/1.1 without Host: 400')
  t.match(bodyOf(noHost), { error: { code: -32000, message: /must carry Host/ } })
  const healthWithoutHost = await raw(port, 'GET /healthz HTTP/1.1\r\n\r\n')
  t.match(healthWithoutHost, /^HTTP\/1\.1 400 /, 'on every path')
  t.match(await raw(port, 'GET /healthz HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200 /, 'HTTP/1.0 needs none')

  const expectation = await raw(port, 'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: foo\r\nContent-Length: 2\r\n\r\n{}')
  t.match(expectation, /^HTTP\/1\.1 417 /)
  t.match(expectation, /\r\nx-request-id: \S+\r\n/i)
  t.match(bodyOf(expectation), { error: { code: -32600, message: /Expectation Failed/ } })

  const lines = gateway.logs.filter((line) => line.outcome === 'malformed HTTP')
  t.same(lines.map((line) => [line.status, line.error]), [[400, 'MCPGW_MALFORMED_HTTP'], [431, 'MCPGW_HEADERS_TOO_LARGE'], [431, 'MCPGW_HEADERS_TOO_LARGE']], 'one request line each')
  t.equal((await fetch(`${gateway.origin}/healthz`)).status, 200)
})
