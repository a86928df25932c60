import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './fixtures.js'

/*
 * A stateless legacy upstream whose tools/call answers as an SSE stream the test shapes (how many
 * events, how far apart, how large), for the stream limit tests (docs/streams.md, "Limits"), and a
 * standalone GET stream that ticks. It counts the answers it is still streaming and remembers every
 * `notifications/cancelled` it got.
 */

export interface StreamedCallArguments {
  /** Progress events before the result (default 1000). */
  readonly events?: number
  /** Milliseconds between events (default 200). */
  readonly gapMs?: number
  /** Bytes of padding in each event (default 0). */
  readonly bytes?: number
}

export interface StreamingUpstream {
  readonly url: string
  /** Streamed answers still open, calls and GET streams (the gateway has not closed the request). */
  open (): number
  /** The most calls open at once so far. */
  readonly maxOpen: number
  /** The request ids named by the `notifications/cancelled` received, in order. */
  readonly cancelled: unknown[]
  /** How many tools/call requests arrived. */
  readonly calls: number
}

interface Message { id?: unknown, method?: string, params?: Record<string, unknown> }

function answer (response: ServerResponse, message: unknown): void {
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(message))
}

export async function withStreamingUpstream (t: Teardown): Promise<StreamingUpstream> {
  let open = 0
  const state = { url: '', maxOpen: 0, cancelled: [] as unknown[], calls: 0, open: () => open }
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      if (request.method === 'GET') {
        // The standalone stream: a notification every 200 ms for as long as the gateway reads it.
        open += 1
        state.maxOpen = Math.max(state.maxOpen, open)
        response.writeHead(200, { 'content-type': 'text/event-stream' })
        response.write(': open\n\n')
        const ticker = setInterval(() => { response.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'tick' } })}\n\n`) }, 200)
        response.once('close', () => {
          clearInterval(ticker)
          open -= 1
        })
        return
      }
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as Message | Message[] | null
      // A batch of calls (2025-03-26) is streamed as one call answering each of its ids at the end.
      const batch = Array.isArray(parsed) ? parsed : undefined
      const message: Message | null = batch === undefined ? parsed as Message | null : batch[0] ?? null
      if (request.method !== 'POST' || message === null) {
        response.writeHead(405).end()
        return
      }
      if (message.id === undefined) {
        if (message.method === 'notifications/cancelled') state.cancelled.push(message.params?.requestId)
        response.writeHead(202).end()
        return
      }
      if (message.method === 'initialize') {
        answer(response, { jsonrpc: '2.0', id: message.id, result: { protocolVersion: message.params?.protocolVersion ?? '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'streaming', version: '1' } } })
        return
      }
      if (message.method !== 'tools/call') {
        answer(response, { jsonrpc: '2.0', id: message.id, result: {} })
        return
      }
      state.calls += 1
      open += 1
      state.maxOpen = Math.max(state.maxOpen, open)
      const args = (message.params?.arguments ?? {}) as StreamedCallArguments
      const total = args.events ?? 1000
      const padding = 'x'.repeat(args.bytes ?? 0)
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      // Node sends the head with the first bytes: a comment makes it leave now.
      response.write(': open\n\n')
      let sent = 0
      const next = (): void => {
        if (sent === total) {
          const ids = batch === undefined ? [message.id] : batch.map((call) => call.id)
          response.end(ids.map((id) => `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'done' }] } })}\n\n`).join(''))
          return
        }
        sent += 1
        const event = { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: sent, message: padding } }
        if (response.write(`event: message\ndata: ${JSON.stringify(event)}\n\n`)) timer = setTimeout(next, args.gapMs ?? 200)
        else response.once('drain', () => { timer = setTimeout(next, args.gapMs ?? 200) })
      }
      let timer = setTimeout(next, args.gapMs ?? 200)
      response.once('close', () => {
        clearTimeout(timer)
        open -= 1
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`
  return state
}
