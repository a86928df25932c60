import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/*
 * The stateful upstream fixture in a child process (test/fixtures/stateful-upstream-process.ts),
 * for behaviour that needs the instance's own event loop: a CPU-bound tool (`busy`) that blocks it
 * without blocking the gateway under test. Run with this process's Node and flags, so the child
 * loads TypeScript the way the test does.
 */

const entry = join(process.cwd(), 'test/fixtures/stateful-upstream-process.ts')
const START_TIMEOUT_MS = 30_000

export interface StatefulUpstreamProcess {
  readonly url: string
  readonly name: string
  close (): Promise<void>
}

export async function startStatefulUpstreamProcess (name: string): Promise<StatefulUpstreamProcess> {
  const child = spawn(process.execPath, [...process.execArgv, entry, name], { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  const close = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.stdin.end()
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  }
  try {
    const lines = createInterface({ input: child.stdout })
    const first = await Promise.race([
      once(lines, 'line') as Promise<[string]>,
      exited.then(([code]) => { throw new Error(`stateful upstream ${name} exited with ${String(code)} before listening`) }),
      new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`stateful upstream ${name} did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS).unref())
    ])
    const { url } = JSON.parse(first[0]) as { url: string }
    return { url, name, close }
  } catch (error) {
    await close()
    throw error
  }
}
