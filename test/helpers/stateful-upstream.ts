import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import {
  CallToolRequestSchema, ElicitResultSchema, isInitializeRequest, ListResourcesRequestSchema, ListToolsRequestSchema,
  ReadResourceRequestSchema, SetLevelRequestSchema, SubscribeRequestSchema, UnsubscribeRequestSchema,
  type CallToolResult, type Tool
} from '@modelcontextprotocol/sdk/types.js'
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/*
 * A stateful MCP server as most are written today: the official SDK v1 Streamable HTTP transport
 * with `sessionIdGenerator: () => randomUUID()`, one transport and one Server per session, kept in
 * this process's memory (the SDK's documented stateful example). A new transport on initialize, the
 * same one for every later request carrying its `mcp-session-id`, 404 (-32001) for an id this process
 * does not hold, 400 for a non-initialize request without one; DELETE is answered by the transport.
 *
 * It is what a route with `upstreamSessions: true` sits in front of, several instances of one such
 * server: its tools show which instance and which upstream session served a call (`whoami`), that
 * state lives in the instance (`count`), that a server-to-client request reaches the client and
 * its answer comes back to the same instance (`ask`), an in-flight call (`slow`), a notification
 * on the standalone GET stream (`notify_changed`) and a CPU-bound call that blocks the whole
 * process (`busy`: run it only in an instance of its own process, stateful-upstream-process.ts).
 * `kill` and `restart` simulate a crash and a restarted process on the same port: every session it
 * held is gone.
 */

export interface StatefulUpstreamRequest {
  /** The HTTP method. */
  readonly method: string
  /** The request's `mcp-session-id` header. */
  readonly sessionId: string | undefined
  /** The JSON-RPC method of a POSTed request or notification; undefined for a response, a batch, GET and DELETE. */
  readonly rpcMethod: string | undefined
  readonly headers: IncomingHttpHeaders
}

export interface StatefulUpstreamOptions {
  /** The instance's name, returned by `whoami`. */
  readonly name: string
  /** 0 (the default) for a free port. */
  readonly port?: number
}

export interface StatefulUpstream {
  readonly url: string
  readonly port: number
  readonly name: string
  /** The upstream session ids this instance holds now. */
  sessions (): string[]
  /** The ids of the sessions ended by a DELETE, in order. */
  readonly deleted: string[]
  /** Every HTTP request received, in order, across restarts. */
  readonly requests: StatefulUpstreamRequest[]
  /** How many initialize requests minted a session here, across restarts. */
  initializeCount (): number
  /** The levels `logging/setLevel` set in that session, in order. */
  levels (sessionId: string): string[]
  /** The URIs that session is subscribed to (`resources/subscribe`, less `resources/unsubscribe`). */
  subscriptions (sessionId: string): string[]
  /** A crash: every connection is cut (in-flight streams included), the port closed, the sessions lost. */
  kill (): Promise<void>
  /** A restarted process: listens again on the same port, with no sessions. */
  restart (): Promise<void>
  close (): Promise<void>
}

const SESSION_NOT_FOUND = { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }
const SESSION_ID_REQUIRED = { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required' }, id: null }
const PARSE_ERROR = { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null }

const RESOURCE_URI = 'test://r'
const emptyObject = { type: 'object' as const, properties: {} }

const tools: Tool[] = [
  { name: 'whoami', description: 'The instance and the upstream session serving this call', inputSchema: emptyObject },
  { name: 'count', description: 'Increments this session\'s counter and returns it', inputSchema: emptyObject },
  {
    name: 'ask',
    description: 'Asks the client (elicitation/create, form mode) and returns the answer\'s content',
    inputSchema: { type: 'object', properties: { message: { type: 'string' } } }
  },
  {
    name: 'slow',
    description: 'Returns "done" after `ms` milliseconds, after one progress notification when asked for progress',
    inputSchema: { type: 'object', properties: { ms: { type: 'number' } }, required: ['ms'] }
  },
  { name: 'notify_changed', description: 'Sends notifications/tools/list_changed on the standalone GET stream', inputSchema: emptyObject },
  {
    name: 'busy',
    description: 'Blocks this process\'s event loop for `ms` milliseconds (a CPU-bound tool): nothing else is served meanwhile',
    inputSchema: { type: 'object', properties: { ms: { type: 'number' } }, required: ['ms'] }
  }
]

function text (value: string): CallToolResult {
  return { content: [{ type: 'text', text: value }] }
}

function headerValue (value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

function sendJson (response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

async function readBody (request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export async function startStatefulUpstream (options: StatefulUpstreamOptions): Promise<StatefulUpstream> {
  const { name } = options
  const transports = new Map<string, StreamableHTTPServerTransport>()
  const deleted: string[] = []
  const requests: StatefulUpstreamRequest[] = []
  const levelsBySession = new Map<string, string[]>()
  const subscriptionsBySession = new Map<string, string[]>()
  let initializes = 0
  /** Aborted by kill and close: a crashed process runs no tool to its end. */
  let life = new AbortController()
  let httpServer: HttpServer | undefined
  let closed = false

  function buildSessionServer (): Server {
    const server = new Server({ name: 'stateful-upstream', version: '1.0.0' }, {
      capabilities: { tools: { listChanged: true }, resources: { subscribe: true }, logging: {} }
    })
    let counter = 0
    server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }))
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const args = request.params.arguments ?? {}
      switch (request.params.name) {
        case 'whoami':
          return text(JSON.stringify({ instance: name, upstreamSessionId: extra.sessionId }))
        case 'count':
          counter++
          return text(String(counter))
        case 'ask': {
          const answer = await extra.sendRequest({
            method: 'elicitation/create',
            params: {
              mode: 'form',
              message: typeof args.message === 'string' ? args.message : 'What is your answer?',
              requestedSchema: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] }
            }
          }, ElicitResultSchema)
          return text(answer.action === 'accept' ? JSON.stringify(answer.content ?? {}) : `no answer: ${answer.action}`)
        }
        case 'slow': {
          const progressToken = request.params._meta?.progressToken
          if (progressToken !== undefined) {
            await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: 0, total: 1 } })
          }
          // A fixed sleep on purpose: the tool's run time is the behaviour (an in-flight call to cut).
          await sleep(Number(args.ms), undefined, { signal: AbortSignal.any([extra.signal, life.signal]) })
          return text('done')
        }
        case 'busy':
          // Blocks the thread, timers and sockets included, as a CPU-bound handler does: the process accepts
          // connections (the kernel does) and answers nothing until it is done.
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(args.ms))
          return text(`busy for ${Number(args.ms)} ms`)
        case 'notify_changed':
          // Not related to the call: the transport sends it on the session's standalone GET stream.
          await server.sendToolListChanged()
          return text('sent')
        default:
          return { isError: true, content: [{ type: 'text', text: `Unknown tool: ${request.params.name}` }] }
      }
    })
    server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: [{ uri: RESOURCE_URI, name: 'r', mimeType: 'text/plain' }] }))
    server.setRequestHandler(ReadResourceRequestSchema, async (request) => ({
      contents: [{ uri: request.params.uri, mimeType: 'text/plain', text: `resource of ${name}` }]
    }))
    server.setRequestHandler(SubscribeRequestSchema, async (request, extra) => {
      const sessionId = extra.sessionId ?? ''
      subscriptionsBySession.set(sessionId, [...(subscriptionsBySession.get(sessionId) ?? []), request.params.uri])
      return {}
    })
    server.setRequestHandler(UnsubscribeRequestSchema, async (request, extra) => {
      const sessionId = extra.sessionId ?? ''
      subscriptionsBySession.set(sessionId, (subscriptionsBySession.get(sessionId) ?? []).filter((uri) => uri !== request.params.uri))
      return {}
    })
    server.setRequestHandler(SetLevelRequestSchema, async (request, extra) => {
      const sessionId = extra.sessionId ?? ''
      levelsBySession.set(sessionId, [...(levelsBySession.get(sessionId) ?? []), request.params.level])
      return {}
    })
    return server
  }

  async function openSession (request: IncomingMessage, response: ServerResponse, body: unknown): Promise<void> {
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sessionId) => {
        initializes++
        transports.set(sessionId, transport)
      },
      onsessionclosed: (sessionId) => { deleted.push(sessionId) }
    })
    // Set before connect: the Server chains its own close handler after this one.
    transport.onclose = () => {
      if (transport.sessionId !== undefined) transports.delete(transport.sessionId)
    }
    await buildSessionServer().connect(transport)
    await transport.handleRequest(request, response, body)
  }

  async function handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? ''
    const sessionId = headerValue(request.headers['mcp-session-id'])
    if (method !== 'POST') {
      requests.push({ method, sessionId, rpcMethod: undefined, headers: request.headers })
      if (method !== 'GET' && method !== 'DELETE') {
        response.writeHead(405, { allow: 'GET, POST, DELETE' }).end()
        return
      }
      if (sessionId === undefined) return sendJson(response, 400, SESSION_ID_REQUIRED)
      const transport = transports.get(sessionId)
      if (transport === undefined) return sendJson(response, 404, SESSION_NOT_FOUND)
      await transport.handleRequest(request, response)
      return
    }
    let body: unknown
    try {
      body = JSON.parse(await readBody(request))
    } catch {
      requests.push({ method, sessionId, rpcMethod: undefined, headers: request.headers })
      return sendJson(response, 400, PARSE_ERROR)
    }
    const rpcMethod = typeof body === 'object' && body !== null && !Array.isArray(body) && typeof (body as { method?: unknown }).method === 'string'
      ? (body as { method: string }).method
      : undefined
    requests.push({ method, sessionId, rpcMethod, headers: request.headers })
    if (sessionId !== undefined) {
      const transport = transports.get(sessionId)
      if (transport === undefined) return sendJson(response, 404, SESSION_NOT_FOUND)
      await transport.handleRequest(request, response, body)
      return
    }
    if (!isInitializeRequest(body)) return sendJson(response, 400, SESSION_ID_REQUIRED)
    await openSession(request, response, body)
  }

  async function listen (port: number): Promise<number> {
    const server = createServer((request, response) => {
      handle(request, response).catch(() => {
        if (!response.headersSent) response.writeHead(500)
        response.end()
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    httpServer = server
    return (server.address() as AddressInfo).port
  }

  async function stop (): Promise<void> {
    const server = httpServer
    httpServer = undefined
    life.abort()
    if (server !== undefined) {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
    // The process's memory goes with it: every session it held.
    const held = [...transports.values()]
    transports.clear()
    await Promise.all(held.map(async (transport) => { await transport.close() }))
  }

  const port = await listen(options.port ?? 0)
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    name,
    sessions: () => [...transports.keys()],
    deleted,
    requests,
    initializeCount: () => initializes,
    levels: (sessionId) => [...(levelsBySession.get(sessionId) ?? [])],
    subscriptions: (sessionId) => [...(subscriptionsBySession.get(sessionId) ?? [])],
    kill: stop,
    restart: async () => {
      if (closed) throw new Error(`stateful upstream ${name} is closed`)
      await stop()
      life = new AbortController()
      await listen(port)
    },
    close: async () => {
      closed = true
      await stop()
    }
  }
}
