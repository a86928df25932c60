import t from 'tap'
import { build } from 'esbuild'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import puppeteer, { type Browser } from 'puppeteer-core'
import { isWellFormedSessionId } from '../src/sessions/session-id.js'
import { withGateway, withUpstream, type Teardown } from './helpers/fixtures.js'

/*
 * Browsers (docs/security.md): a page served from another origin runs MCP sessions through the
 * gateway in a real headless Chromium, with plain fetch and with the official SDK client, so every
 * preflight, exposed header and refusal is judged by the browser's own CORS implementation. A page
 * on an origin that is not allowed sees what its users would: fetch rejects ("Failed to fetch").
 */

const CHROMIUM = '/usr/bin/chromium-headless-shell'
/** Flags that let Chromium run as root on a machine with no GPU and a closed network. */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const RESULT_TIMEOUT_MS = 15_000

interface StaticSite {
  /** e.g. http://127.0.0.1:40123 */
  readonly origin: string
}

/** The page script with the official SDK client bundled in, as a browser application ships it. */
async function bundlePageScript (): Promise<string> {
  const result = await build({
    entryPoints: [join(import.meta.dirname, 'fixtures', 'browser-page.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent'
  })
  return result.outputFiles[0]?.text ?? ''
}

/** A static site on its own port, that is on its own origin: the page and its script. */
async function withStaticSite (t: Teardown, script: string): Promise<StaticSite> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://site').pathname
    if (path === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      response.end('<!doctype html><meta charset="utf-8"><title>MCP from a browser</title><script type="module" src="/page.js"></script>')
    } else if (path === '/page.js') {
      response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' })
      response.end(script)
    } else {
      response.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

async function withBrowser (t: Teardown): Promise<Browser> {
  const userDataDir = await mkdtemp(join(tmpdir(), 'mcpgw-chromium-'))
  t.teardown(() => rm(userDataDir, { recursive: true, force: true }))
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: 'shell', userDataDir, args: CHROMIUM_ARGS, timeout: 20_000 })
  t.teardown(() => browser.close())
  return browser
}

interface PageRun {
  readonly result: Record<string, unknown>
  /** What the page's console showed, Chromium's own CORS messages included. */
  readonly consoleLines: string[]
}

/** Opens the page on `site` for one scenario and returns what it wrote to `window.__result`. */
async function runPage (browser: Browser, site: StaticSite, gatewayEndpoint: string, scenario: string): Promise<PageRun> {
  const page = await browser.newPage()
  try {
    const consoleLines: string[] = []
    page.on('console', (message) => { consoleLines.push(message.text()) })
    page.on('pageerror', (error) => { consoleLines.push(`pageerror: ${String(error)}`) })
    const query = new URLSearchParams({ gateway: gatewayEndpoint, scenario })
    await page.goto(`${site.origin}/?${query.toString()}`, { timeout: RESULT_TIMEOUT_MS })
    await page.waitForFunction('window.__result !== undefined', { timeout: RESULT_TIMEOUT_MS, polling: 50 })
    const result = await page.evaluate('window.__result') as Record<string, unknown>
    return { result, consoleLines }
  } finally {
    await page.close()
  }
}

const skip = existsSync(CHROMIUM) ? false : `headless Chromium is not installed (${CHROMIUM}): apt-get install chromium-headless-shell (.ci/run installs it)`

t.test('a page on an allowed origin runs sessions in headless Chromium; another origin is refused', { skip }, async (t) => {
  const upstream = await withUpstream(t)
  const script = await bundlePageScript()
  const allowedSite = await withStaticSite(t, script)
  const otherSite = await withStaticSite(t, script)
  const gateway = await withGateway(t, {
    config: { routes: [{ path: '/mcp', upstream: upstream.url }], security: { allowedOrigins: [allowedSite.origin] } }
  })
  const endpoint = `${gateway.origin}/mcp`
  const browser = await withBrowser(t)

  await t.test('fetch: initialize, tools/list, DELETE, then 404', async (t) => {
    const { result, consoleLines } = await runPage(browser, allowedSite, endpoint, 'fetch')
    t.match(result, {
      ok: true,
      initializeStatus: 200,
      serverName: 'demo-upstream',
      initializedStatus: 202,
      toolsListStatus: 200,
      tools: ['add', 'echo', 'stream-two-messages'],
      deleteStatus: 204,
      afterDeleteStatus: 404
    }, 'every step answered as in a non-browser client', { result, consoleLines })
    t.ok(typeof result.sessionId === 'string' && isWellFormedSessionId(result.sessionId), 'the page read Mcp-Session-Id (exposed to it)')
  })

  await t.test('the official SDK client: connect, listTools, callTool, terminateSession', async (t) => {
    const { result, consoleLines } = await runPage(browser, allowedSite, endpoint, 'sdk')
    t.match(result, {
      ok: true,
      serverName: 'demo-upstream',
      tools: ['add', 'echo', 'stream-two-messages'],
      echo: [{ type: 'text', text: 'hello from the browser' }],
      sessionIdAfterTerminate: null,
      afterTerminateStatus: 404
    }, 'the session ran to its end', { result, consoleLines })
    t.ok(typeof result.sessionId === 'string' && isWellFormedSessionId(result.sessionId), 'the client held the gateway-minted id')
    t.same(result.transportErrors, [], 'no transport errors (the standalone GET stream included)')
  })

  await t.test('a page on an origin that is not allowed: fetch rejects, nothing reaches the upstream', async (t) => {
    const receivedBefore = upstream.received.length
    const logsBefore = gateway.logs.length
    const { result, consoleLines } = await runPage(browser, otherSite, endpoint, 'refused')
    const failedToFetch = { rejected: true, name: 'TypeError', message: 'Failed to fetch' }
    t.match(result, { ok: true, preflighted: failedToFetch, simple: failedToFetch }, 'both fetches reject with the CORS TypeError', { result, consoleLines })
    const blocked = consoleLines.filter((line) => line.includes(`from origin '${otherSite.origin}' has been blocked by CORS policy`))
    t.equal(blocked.length, 2, 'Chromium reports both CORS refusals in the console', { consoleLines })
    t.equal(upstream.received.length, receivedBefore, 'the gateway forwarded nothing from that origin')
    const posts = gateway.logs.slice(logsBefore).filter((line) => line.msg === 'request completed' && line.httpMethod === 'POST')
    t.match(posts, [{ status: 403, error: 'MCPGW_ORIGIN_NOT_ALLOWED' }], 'the POST sent without a preflight got 403')
    t.equal(posts.length, 1, 'the preflighted POST never left the browser')
  })
})
