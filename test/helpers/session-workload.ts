import { initializeRequest } from './mcp-http.js'

/*
 * A randomized, concurrent mix of create / use / delete / use-after-delete against a set of gateway
 * replicas, each request to a replica picked at random. Every worker owns its sessions, so the
 * expected answer of every request is known: a live session 200, a deleted one 404, a DELETE 204.
 * Anything else is a wrong answer. Seeded, so a failure replays.
 */

/** Mulberry32: small, fast, good enough to drive a test. */
export function seededRandom (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let value = state
    value = Math.imul(value ^ (value >>> 15), value | 1)
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61)
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296
  }
}

export interface WorkloadOptions {
  /** Origins currently in rotation (read before every request: replicas may leave and return). */
  readonly targets: () => readonly string[]
  readonly operations: number
  readonly concurrency: number
  readonly seed: number
  readonly path?: string
  /** Kept up to date with the requests in flight per origin (a balancer draining a replica waits for 0). */
  readonly inFlight?: Map<string, number>
}

export interface WorkloadResult {
  readonly counts: Record<'create' | 'use' | 'delete' | 'useDeleted', number>
  readonly wrong: string[]
  /** Sessions still live at the end, with the origin that created them. */
  readonly live: string[]
}

const toolsList = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })
const initialize = JSON.stringify(initializeRequest(1))
const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

async function send (url: string, method: string, sessionId: string | undefined, body?: string): Promise<Response> {
  return await fetch(url, {
    method,
    headers: { ...headers, ...(sessionId === undefined ? {} : { 'mcp-session-id': sessionId }) },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(10_000)
  })
}

export async function runSessionWorkload (options: WorkloadOptions): Promise<WorkloadResult> {
  const random = seededRandom(options.seed)
  const counts = { create: 0, use: 0, delete: 0, useDeleted: 0 }
  const wrong: string[] = []
  const live: string[] = []
  let remaining = options.operations
  const path = options.path ?? '/mcp'

  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
  const inFlight = options.inFlight ?? new Map<string, number>()
  const count = (origin: string, change: number): void => { inFlight.set(origin, (inFlight.get(origin) ?? 0) + change) }

  /** Sends one request and records it as wrong unless it gets `expected`. */
  async function check (what: string, expected: number, method: string, sessionId: string | undefined, body?: string): Promise<Response | undefined> {
    // Counted in flight from the moment its target is picked, in the same tick.
    const origin = pick(options.targets())
    const url = `${origin}${path}`
    count(origin, 1)
    try {
      const answer = await send(url, method, sessionId, body)
      await answer.arrayBuffer()
      if (answer.status !== expected) wrong.push(`${what} at ${url}: expected ${expected}, got ${answer.status}`)
      return answer
    } catch (error) {
      const cause = (error as { cause?: { code?: string, message?: string } }).cause
      wrong.push(`${what} at ${url}: expected ${expected}, got ${(error as Error).message} (${cause?.code ?? cause?.message ?? 'no cause'})`)
      return undefined
    } finally {
      count(origin, -1)
    }
  }

  async function worker (): Promise<void> {
    const mine: string[] = []
    const deleted: string[] = []
    while (remaining > 0) {
      remaining--
      const roll = random()
      if (mine.length === 0 || roll < 0.2) {
        counts.create++
        const answer = await check('initialize', 200, 'POST', undefined, initialize)
        const sessionId = answer?.headers.get('mcp-session-id')
        if (sessionId !== null && sessionId !== undefined) mine.push(sessionId)
        else if (answer?.status === 200) wrong.push('initialize: 200 without a session id')
      } else if (roll < 0.6) {
        counts.use++
        await check('use of a live session', 200, 'POST', pick(mine), toolsList)
      } else if (roll < 0.75 || deleted.length === 0) {
        counts.delete++
        const index = Math.floor(random() * mine.length)
        const [sessionId] = mine.splice(index, 1) as [string]
        await check('DELETE of a live session', 204, 'DELETE', sessionId)
        deleted.push(sessionId)
      } else {
        counts.useDeleted++
        await check('use of a deleted session', 404, 'POST', pick(deleted), toolsList)
      }
    }
    live.push(...mine)
  }

  await Promise.all(Array.from({ length: options.concurrency }, async () => await worker()))
  return { counts, wrong, live }
}
