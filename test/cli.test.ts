import t from 'tap'
import type { Test } from 'tap'
import { isWellFormedSessionId } from '../src/sessions/session-id.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { withUpstream } from './helpers/fixtures.js'
import { openSession } from './helpers/mcp-http.js'

/* The built CLI (`npm run build` runs before the tests): flags, exit codes, start-up and SIGTERM. */

const cli = join(process.cwd(), 'dist/src/cli.js')

interface Run { code: number | null, stdout: string, stderr: string }

async function runCli (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const child = spawn(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, stdout, stderr }
}

let dir: string
t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpgw-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
})

t.test('--help explains --config and MCP_GATEWAY_CONFIG', async (t) => {
  const run = await runCli(['--help'])
  t.equal(run.code, 0)
  t.match(run.stdout, /--config FILE/)
  t.match(run.stdout, /MCP_GATEWAY_CONFIG/)
})

t.test('no configuration, or an unknown flag: exit 2 with usage', async (t) => {
  const none = await runCli([])
  t.equal(none.code, 2)
  t.match(none.stderr, /no configuration: pass --config FILE or set MCP_GATEWAY_CONFIG/)
  const unknown = await runCli(['--confg', 'x.yaml'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /Usage: mcp-session-gateway/)
})

t.test('an invalid configuration stops start-up with one line naming the key, exit 1', async (t) => {
  const file = join(dir, 'bad.yaml')
  await writeFile(file, 'routes:\n  - path: /mcp\n    upstream: http://127.0.0.1:3000/mcp\n  - path: /b\n    upstream: not-a-url\n')
  const run = await runCli(['--config', file])
  t.equal(run.code, 1)
  t.equal(run.stderr, `mcp-session-gateway: invalid configuration: ${file}: routes[1].upstream: must be an absolute URL, got "not-a-url"\n`)
  const missing = await runCli(['--config', join(dir, 'missing.yaml')])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /cannot read config file/)
})

/** The CLI started with MCP_GATEWAY_CONFIG only, once it listens. */
async function startFromEnvironment (t: Test): Promise<{ origin: string, child: ChildProcess, exited: Promise<number | null> }> {
  const upstream = await withUpstream(t)
  const file = join(dir, 'good.yaml')
  await writeFile(file, `listen:\n  host: 127.0.0.1\n  port: 0\nroutes:\n  - path: /mcp\n    upstream: ${upstream.url}\n`)
  const child = spawn(process.execPath, [cli], { env: { PATH: process.env.PATH, MCP_GATEWAY_CONFIG: file }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  const origin = await new Promise<string>((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => reject(new Error(`no listening line in: ${output}`)), 10_000)
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match !== null) { clearTimeout(timer); resolve(match[1] as string) }
    })
  })
  return { origin, child, exited }
}

t.test('MCP_GATEWAY_CONFIG starts the gateway', async (t) => {
  const { origin } = await startFromEnvironment(t)
  const sessionId = await openSession(`${origin}/mcp`)
  t.ok(isWellFormedSessionId(sessionId), 'serves sessions')
})

t.test('SIGTERM stops the gateway with exit 0', async (t) => {
  const { origin, child, exited } = await startFromEnvironment(t)
  await openSession(`${origin}/mcp`)
  child.kill('SIGTERM')
  t.equal(await exited, 0)
})
