import { errorDefinitions, type GatewayErrorCode } from '../../src/errors.js'
import { MAX_BODY_BYTES, type Answer, type WireRequest } from './fuzz-client.js'
import type { Crash } from './fuzz-gateways.js'
import { UPSTREAM_MARK_BODY, UPSTREAM_MARK_HEADER } from './misbehaving-upstream.js'

/*
 * What every answer of the gateway must be (docs/errors.md), as checks the route fuzzer applies to
 * each answer, and the signature of each kind of failure: a stable one-line name (no port, no id),
 * so that a failure already known (test/fixtures/fuzz-known-failures.json) is recognised, counted and
 * let pass while the search goes on for new ones.
 */

export interface Violation {
  /** Stable name of the kind of failure. */
  readonly signature: string
  /** This occurrence: what was sent and what came back. */
  readonly detail: string
}

export interface AnswerContext {
  readonly wire: WireRequest
  /** A live session of another principal was presented, on a request the session rules apply to. */
  readonly stranger: boolean
  /** Internal addresses of the upstreams: never shown to a client. */
  readonly upstreamOrigins: readonly string[]
}



const definitions = Object.entries(errorDefinitions) as Array<[GatewayErrorCode, typeof errorDefinitions[GatewayErrorCode]]>

/** The codes that can have produced this answer: status, JSON-RPC code and message agree. */
export function codesFor (status: number, code: unknown, message: unknown): GatewayErrorCode[] {
  if (typeof code !== 'number' || typeof message !== 'string') return []
  return definitions.filter(([, definition]) => definition.statusCode === status && definition.jsonRpcCode === code && message.startsWith(definition.message)).map(([name]) => name)
}

function parseJson (body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown
  } catch {
    return undefined
  }
}

function mediaType (headers: Answer['headers']): string {
  return String(headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
}

/** A 2026-07-28 request passes through whatever session id it carries: the session rules do not apply. */
export function looksModern (wire: WireRequest): boolean {
  const version = wire.headers['mcp-protocol-version']
  if (version !== undefined && version.trim() >= '2026') return true
  return wire.body?.includes('io.modelcontextprotocol/protocolVersion') ?? false
}

/** Short printable form of a body, for failure messages. */
export function preview (body: Buffer | undefined, limit = 300): string {
  if (body === undefined) return '(none)'
  const text = body.toString('latin1')
  return JSON.stringify(text.length > limit ? `${text.slice(0, limit)}…(${text.length} bytes)` : text)
}

/** The request as a curl command line (Latin-1 header values escaped by JSON quoting). */
export function curl (wire: WireRequest): string {
  const parts = [`curl -X ${wire.method} 'http://127.0.0.1:${wire.port}${wire.path}'`]
  for (const [name, value] of Object.entries(wire.headers)) {
    const shown = value.length > 120 ? `${value.slice(0, 60)}…(${value.length} chars)` : value
    parts.push(`-H ${JSON.stringify(`${name}: ${shown}`)}`)
  }
  if (wire.body !== undefined) parts.push(`--data-binary ${preview(wire.body, 400)}`)
  if (wire.chunked) parts.push('(chunked)')
  if (wire.abortMidBody) parts.push('(Content-Length 10 over the body; the client hangs up)')
  if (wire.drop) parts.push('(the client hangs up once the headers came)')
  return parts.join(' ')
}

function describe (context: AnswerContext, answer: Answer): string {
  return `${curl(context.wire)}\n  → HTTP ${answer.status} ${JSON.stringify(answer.headers['content-type'] ?? '')} ${preview(answer.body)}`
}

/** The checks of one answer. */
export function judgeAnswer (context: AnswerContext, answer: Answer): Violation[] {
  const { wire } = context
  const violations: Violation[] = []
  const report = (signature: string): void => { violations.push({ signature, detail: describe(context, answer) }) }
  if (answer.hung === true) {
    report(`no response headers within the deadline (${wire.method})`)
    return violations
  }
  if (answer.failure !== undefined) {
    // The client itself went away, or Node refused to send the request: nothing to judge.
    if (answer.cutByClient) return violations
    // A body over the limit is refused (413) before it is read, and the connection closed: a client
    // still writing then sees the reset before the answer (TCP discards it), whatever the server does.
    if ((wire.body?.length ?? 0) > MAX_BODY_BYTES && (answer.failure === 'ECONNRESET' || answer.failure === 'EPIPE')) return violations
    if (wire.method === 'HEAD' && answer.failure.startsWith('HPE_')) {
      report('an answer to HEAD carries a body (the client cannot parse what follows)')
      return violations
    }
    report(`connection closed without an answer (${answer.failure})`)
    return violations
  }
  const status = answer.status
  const fromUpstream = answer.headers[UPSTREAM_MARK_HEADER] !== undefined || answer.body.includes(UPSTREAM_MARK_BODY)

  // The upstream's internal address never reaches a client (its OAuth challenge names the gateway's metadata).
  for (const [name, value] of Object.entries(answer.headers)) {
    const text = Array.isArray(value) ? value.join(', ') : String(value ?? '')
    if (context.upstreamOrigins.some((origin) => text.includes(origin))) report(`upstream address in the ${name} response header`)
  }
  const minted = answer.headers['mcp-session-id']
  if (typeof minted === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-/.test(minted)) report('the upstream\'s own session id reached the client')

  if (context.stranger && status >= 200 && status < 300 && ['POST', 'GET', 'DELETE'].includes(wire.method) && !looksModern(wire)) {
    report(`a stranger's session served (${wire.method} → ${status})`)
  }

  if (fromUpstream) return violations
  if (status >= 200 && status < 300) {
    if (wire.method === 'HEAD' || status === 202 || status === 204) return violations
    const type = mediaType(answer.headers)
    if (type === 'application/json') {
      const parsed = parseJson(answer.body)
      const messages = Array.isArray(parsed) ? parsed : [parsed]
      if (parsed === undefined || !messages.every((message) => typeof message === 'object' && message !== null && (message as { jsonrpc?: unknown }).jsonrpc === '2.0')) {
        // A body the client stopped reading is judged by what it read.
        if (!answer.cutByClient) report(`HTTP ${status} from the gateway with a body that is not JSON-RPC`)
      }
    } else if (type !== 'text/event-stream') {
      // /healthz and friends are not fuzzed; an MCP answer is JSON or SSE.
      report(`HTTP ${status} from the gateway with content-type ${JSON.stringify(type)}`)
    }
    return violations
  }
  // Not 2xx and not the upstream's: one of the gateway's coded errors, with a JSON-RPC error body.
  if (wire.method === 'HEAD') {
    if (!definitions.some(([, definition]) => definition.statusCode === status)) report(`HTTP ${status} to HEAD is no documented status`)
    return violations
  }
  const parsed = parseJson(answer.body) as { jsonrpc?: unknown, error?: { code?: unknown, message?: unknown } } | undefined
  if (parsed === undefined || typeof parsed !== 'object' || parsed === null || parsed.jsonrpc !== '2.0' || typeof parsed.error !== 'object' || parsed.error === null) {
    const fastifyShape = parsed !== undefined && typeof parsed === 'object' && parsed !== null && 'statusCode' in parsed ? ' (Fastify\'s own error body)' : ''
    report(`HTTP ${status} without a JSON-RPC error body${fastifyShape}`)
    return violations
  }
  if (codesFor(status, parsed.error.code, parsed.error.message).length === 0) {
    report(`HTTP ${status} with JSON-RPC code ${String(parsed.error.code)} is no documented MCPGW error`)
  }
  return violations
}

/** A gateway error's code as its request's log line names it must agree with what the client got. */
export function judgeLogLine (status: number, body: Buffer, logged: unknown): string | undefined {
  const parsed = parseJson(body) as { error?: { code?: unknown, message?: unknown } } | undefined
  if (parsed?.error === undefined) return undefined
  if (typeof logged !== 'string' || !(logged in errorDefinitions)) return `its log line names no MCPGW code (error: ${JSON.stringify(logged)})`
  const definition = errorDefinitions[logged as GatewayErrorCode]
  if (definition.statusCode !== status || definition.jsonRpcCode !== parsed.error.code) return `its log line names ${logged} (HTTP ${definition.statusCode}, ${definition.jsonRpcCode}) but the client got HTTP ${status}, ${String(parsed.error.code)}`
  return undefined
}

/** A crash's signature: the error's first line and the first frame in our sources. */
export function crashSignature (crash: Crash): string {
  const lines = crash.stderr.split('\n')
  const errorLine = lines.find((line) => /^\s*(Uncaught )?[A-Za-z]*Error\b/.test(line) || /^\s*\[?[A-Za-z]*Error\]?:/.test(line))?.trim() ?? `exit ${String(crash.code ?? crash.signal)}`
  const frame = lines.find((line) => /\bat .*\/src\//.test(line) && !line.includes('node_modules'))
  const where = frame === undefined ? '' : ` at ${/at (?:async )?([^\s(]+)/.exec(frame.trim())?.[1] ?? ''} (${/\/(src\/[^:]+)/.exec(frame)?.[1] ?? ''})`
  return `gateway process crashed: ${errorLine.replace(/\d{2,5}/g, 'N').slice(0, 160)}${where}`
}
