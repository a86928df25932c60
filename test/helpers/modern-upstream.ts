import { acceptedContent, createMcpHandler, inputRequired, inputResponse, McpServer, type ServerNotifier } from '@modelcontextprotocol/server'
import type { IncomingMessage } from 'node:http'
import * as z from 'zod/v4'
import { serveFetchHandler } from './serve-fetch-handler.js'

/*
 * An upstream built with the official SDK v2 (`createMcpHandler`): `legacy: 'stateless'` serves both
 * eras (modern per-request metadata, and legacy stateless), `legacy: 'reject'` is modern-only.
 * Besides plain tools it has what the era bridge must carry (docs/era-bridge.md): a streamed tool (`count`,
 * progress notifications then the result), a multi round-trip tool (`deploy`: an elicitation, then
 * the client's roots, with a requestState echoed between rounds), a tool that runs until cancelled
 * (`wait`), and resource change notifications for `subscriptions/listen` (`notify`).
 */

export interface ModernUpstream {
  readonly url: string
  /** Every request as received: method and headers. */
  readonly received: Array<{ method: string, headers: IncomingMessage['headers'], body: string }>
  /** Publishes change events to open `subscriptions/listen` streams. */
  readonly notify: ServerNotifier
  /** How many `wait` calls saw their request aborted (the modern cancellation signal). */
  readonly cancelledWaits: () => number
  /** Resolves when a `wait` call has started. */
  readonly waitStarted: () => Promise<void>
  close (): Promise<void>
}

interface UpstreamState {
  cancelledWaits: number
  onWaitStarted: Array<() => void>
}

const confirmation = z.object({ confirm: z.boolean() })

function buildServer (state: UpstreamState): McpServer {
  const server = new McpServer({ name: 'modern-upstream', version: '2.0.0' }, {
    capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true }, prompts: {}, logging: {} }
  })
  server.registerTool('echo', { description: 'Returns its text', inputSchema: z.object({ text: z.string() }) },
    async ({ text }) => ({ content: [{ type: 'text', text }] }))
  server.registerTool('count', { description: 'Streams progress up to n, then returns', inputSchema: z.object({ n: z.number().int().min(1).max(10) }) },
    async ({ n }, ctx) => {
      const progressToken = ctx.mcpReq._meta?.progressToken
      for (let step = 1; step <= n; step++) {
        if (progressToken !== undefined) await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress: step, total: n } })
        // A fixed sleep on purpose: it paces the stream, so progress arrives as separate events over time.
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return { content: [{ type: 'text', text: `counted to ${n}` }] }
    })
  server.registerTool('deploy', { description: 'Asks for confirmation, then for the client\'s roots', inputSchema: z.object({ env: z.string() }) },
    async ({ env }, ctx) => {
      const responses = ctx.mcpReq.inputResponses
      const roots = inputResponse(responses, 'roots')
      if (roots.kind === 'roots') {
        return { content: [{ type: 'text', text: `deployed ${env} to ${String(roots.roots[0]?.uri)} (state ${String(ctx.mcpReq.requestState())})` }] }
      }
      const answer = inputResponse(responses, 'confirm')
      if (answer.kind === 'elicit' && answer.action !== 'accept') return { content: [{ type: 'text', text: `not deployed: ${answer.action}` }] }
      if (acceptedContent(responses, 'confirm', confirmation)?.confirm === true) {
        return inputRequired({ inputRequests: { roots: inputRequired.listRoots() }, requestState: 'confirmed' })
      }
      return inputRequired({ inputRequests: { confirm: inputRequired.elicit({ message: `Deploy ${env}?`, requestedSchema: confirmation }) }, requestState: 'asked' })
    })
  server.registerTool('wait', { description: 'Runs until its request is cancelled' }, async (ctx) => {
    for (const started of state.onWaitStarted.splice(0)) started()
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 30_000)
      ctx.mcpReq.signal.addEventListener('abort', () => {
        state.cancelledWaits++
        clearTimeout(timer)
        resolve()
      }, { once: true })
    })
    return { content: [{ type: 'text', text: 'waited' }] }
  })
  server.registerResource('greeting', 'demo://greeting', { mimeType: 'text/plain' },
    async (uri) => ({ contents: [{ uri: uri.href, text: 'Hello from the modern upstream' }] }))
  server.registerPrompt('greet', { description: 'A greeting', argsSchema: z.object({ name: z.string() }) },
    async ({ name }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello ${name}` } }] }))
  return server
}

export async function startModernUpstream (legacy: 'stateless' | 'reject'): Promise<ModernUpstream> {
  const state: UpstreamState = { cancelledWaits: 0, onWaitStarted: [] }
  const handler = createMcpHandler(() => buildServer(state), { legacy })
  const received: ModernUpstream['received'] = []

  const served = await serveFetchHandler(async (request) => await handler.fetch(request), (request, body) => {
    received.push({ method: request.method ?? '', headers: request.headers, body: body.toString('utf8') })
  })
  return {
    url: served.url,
    received,
    notify: handler.notify,
    cancelledWaits: () => state.cancelledWaits,
    waitStarted: async () => { await new Promise<void>((resolve) => { state.onWaitStarted.push(resolve) }) },
    close: async () => {
      await handler.close()
      await served.close()
    }
  }
}
