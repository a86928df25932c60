import { randomBytes } from 'node:crypto'
import { GatewayError, jsonRpcErrorBody } from '../errors.js'
import { isJsonObject, isJsonRpcMessage, parseJsonText, type JsonRpcMessage, type JsonRpcRequest } from '../mcp/json-rpc.js'
import type { ReplicaRelay } from '../sessions/replica-relay.js'
import type { UpstreamObserver } from '../upstream/forward-request.js'
import { isSuccessStatus, type UpstreamClient } from '../upstream/upstream-client.js'
import { isUpstreamFailure, upstreamFailure } from '../upstream/upstream-failure.js'
import { rewriteUpstreamHeaders } from '../upstream/upstream-headers.js'
import { readUpstreamBody, upstreamMessages } from '../upstream/upstream-messages.js'
import type { LegacyReply } from './legacy-reply.js'
import { toModernRequest, withoutModernMeta, type ClientIdentity } from './modern-envelope.js'

/*
 * One legacy request through the era bridge (docs/era-bridge.md), from the client's POST to its result.
 *
 * 2026-07-28 has no server-to-client requests: a `tools/call`, `prompts/get` or `resources/read` that
 * needs the client (elicitation, sampling, roots) is answered with `resultType: "input_required"` and
 * the embedded requests, and the client is to send the request again, as a new request, with
 * `inputResponses` and the `requestState` echoed byte for byte ("multi round-trip requests"). A legacy
 * client knows none of that; it knows server-to-client requests on the response stream. So the
 * gateway plays the modern client: it puts each embedded request on the legacy client's SSE stream
 * as an ordinary JSON-RPC request, waits for the answers (POSTed to any gateway instance: the relay
 * brings them here), and sends the request upstream again, until the upstream gives a complete
 * result or an error, which ends the stream. Bounded by `maxInputRounds` and, per round,
 * `inputTimeout`.
 *
 * Cancellation: closing the upstream stream is the modern cancellation signal. A legacy
 * `notifications/cancelled` for this request (on any instance) aborts the upstream call here and ends
 * the client's stream without a response, as the legacy revision says a cancelled request gets.
 */

export interface BridgedCallOptions {
  /** The route's upstream client: its pool bounds the wait for each leg's response headers. */
  readonly upstream: UpstreamClient
  /** Headers for every upstream leg (the client's own, request id, trace context). */
  readonly headers: Record<string, string>
  readonly inputTimeout: number
  readonly maxInputRounds: number
  readonly relay: ReplicaRelay
  /** The route's OAuth metadata URL: an upstream's challenge is rewritten to name it. */
  readonly resourceMetadataUrl: () => string
  /** The route's `passCookies`. */
  readonly passCookies: boolean
  /** Told how long each upstream leg took to answer, and of each upstream failure (for the metrics). */
  readonly observe: UpstreamObserver
}

export interface BridgedSession {
  readonly id: string
  readonly identity: ClientIdentity
}

/** A requestState-only round asks nothing of the client: pace it, as the SDK clients do. */
const REQUEST_STATE_ONLY_PACING_MS = 250

interface InputRequired {
  readonly inputRequests?: Record<string, { readonly method: string, readonly params?: unknown }>
  readonly requestState?: string
}

type LegOutcome = { readonly done: true } | { readonly done: false, readonly inputRequired: InputRequired }

class Cancelled extends Error {}

/** A modern result as a legacy client expects it: `resultType` and the envelope's `_meta` keys are 2026-07-28 vocabulary. */
function legacyResponse (message: JsonRpcMessage, id: JsonRpcRequest['id']): Record<string, unknown> {
  if ('result' in message && isJsonObject(message.result)) {
    const { resultType: _resultType, ...result } = message.result
    return { jsonrpc: '2.0', id, result: withoutModernMeta(result) }
  }
  return { ...message, id }
}

function isInputRequired (message: JsonRpcMessage): message is JsonRpcMessage & { result: Record<string, unknown> } {
  return 'result' in message && isJsonObject(message.result) && message.result.resultType === 'input_required'
}

/** The shape the gateway relies on: embedded requests are objects with a method; requestState a string. */
function readInputRequired (result: Record<string, unknown>): InputRequired {
  const { inputRequests, requestState } = result
  const requestsValid = inputRequests === undefined || (isJsonObject(inputRequests) &&
    Object.values(inputRequests).every((embedded) => isJsonObject(embedded) && typeof embedded.method === 'string' && (embedded.params === undefined || isJsonObject(embedded.params))))
  if (!requestsValid || (requestState !== undefined && typeof requestState !== 'string')) {
    throw new GatewayError('MCPGW_UPSTREAM_INVALID_RESPONSE', { detail: 'malformed input_required result' })
  }
  return result as InputRequired
}

export async function runBridgedCall (message: JsonRpcRequest, session: BridgedSession, reply: LegacyReply, clientGone: AbortSignal, options: BridgedCallOptions): Promise<void> {
  const call = new AbortController()
  const abort = (): void => { call.abort(new Cancelled()) }
  clientGone.addEventListener('abort', abort, { once: true })
  const untrack = options.relay.trackCall(session.id, message.id, abort)
  // A cancellation POSTed to another instance reaches this one only once it listens (once per relay).
  options.relay.join().catch(() => undefined) // retried by askClient, which reports the failure
  const originalParams = isJsonObject(message.params) ? message.params : {}
  try {
    let leg: JsonRpcRequest = message
    // `rounds`: how often the client was asked (or a requestState-only round was retried) so far.
    for (let rounds = 0; ; rounds++) {
      const outcome = await callUpstream(leg, message.id, session.identity, reply, call.signal, options)
      if (outcome.done) return
      if (rounds >= options.maxInputRounds) {
        reply.finish(jsonRpcErrorBody(new GatewayError('MCPGW_INPUT_ROUNDS_EXCEEDED', { detail: `${options.maxInputRounds} rounds` }), message.id))
        return
      }
      const { inputRequests, requestState } = outcome.inputRequired
      const inputResponses = await askClient(inputRequests ?? {}, session.id, reply, call.signal, options)
      leg = {
        ...message,
        // A retry is a new request (2026-07-28, multi round-trip requests); its answer goes back under the client's id.
        id: `mcpgw-retry-${randomBytes(9).toString('base64url')}`,
        params: {
          ...originalParams,
          ...(inputResponses === undefined ? {} : { inputResponses }),
          ...(requestState === undefined ? {} : { requestState })
        }
      }
    }
  } catch (error) {
    if (error instanceof Cancelled || call.signal.aborted) {
      reply.end()
      return
    }
    const failure = upstreamFailure(error)
    // Before anything was streamed, the route answers with the HTTP error itself (and logs a fault of ours).
    if (!reply.started) {
      if (isUpstreamFailure(failure)) options.observe.upstreamFailed(failure)
      throw failure
    }
    options.observe.upstreamFailed(failure)
    reply.finish(jsonRpcErrorBody(failure, message.id))
  } finally {
    untrack()
    clientGone.removeEventListener('abort', abort)
  }
}

/**
 * One upstream leg. Notifications are relayed as they arrive; the response to `leg` ends the call
 * (complete result or error, under the client's id) or asks for another round.
 */
async function callUpstream (leg: JsonRpcRequest, clientId: JsonRpcRequest['id'], identity: ClientIdentity, reply: LegacyReply, cancelled: AbortSignal, options: BridgedCallOptions): Promise<LegOutcome> {
  const started = performance.now()
  const request = toModernRequest(leg, identity)
  const answer = await options.upstream.post({ ...options.headers, ...request.headers }, request.body, cancelled)
  options.observe.upstreamResponded((performance.now() - started) / 1000)
  if (!isSuccessStatus(answer.statusCode) && !reply.started) {
    const headers = rewriteUpstreamHeaders({ ...answer.headers }, options.passCookies, options.resourceMetadataUrl)
    const body = await readUpstreamBody(answer.body, options.upstream.maxResponseBytes)
    if (answer.statusCode === 404) {
      // A legacy client reads 404 as "session not found" and starts over (2025-11-25, Session
      // Management): a modern server's 404 for one request is that request's error, in-band.
      const message = parseJsonText(body)
      if (!isJsonRpcMessage(message) || !('error' in message)) throw new GatewayError('MCPGW_UPSTREAM_INVALID_RESPONSE', { detail: `HTTP 404 without a JSON-RPC error for ${leg.method}` })
      reply.finish({ ...message, id: clientId })
      return { done: true }
    }
    reply.upstreamError(answer.statusCode, headers, body)
    return { done: true }
  }

  for await (const message of upstreamMessages(answer, options.upstream.maxResponseBytes)) {
    if ('method' in message || !('id' in message) || message.id !== leg.id) {
      // Waits while the client reads slowly: the next upstream message is read only after this one left.
      await reply.event('params' in message && isJsonObject(message.params) ? { ...message, params: withoutModernMeta(message.params) } : message)
      continue
    }
    if (isInputRequired(message)) return { done: false, inputRequired: readInputRequired(message.result) }
    reply.finish(legacyResponse(message, clientId))
    return { done: true }
  }
  throw new GatewayError('MCPGW_UPSTREAM_INVALID_RESPONSE', { detail: `the upstream ended its answer to ${leg.method} without a response (HTTP ${answer.statusCode})` })
}

/**
 * Puts the embedded requests on the client's stream and waits for every answer. Resolves with the
 * `inputResponses` map (undefined for a requestState-only round, after a short pause).
 */
async function askClient (inputRequests: NonNullable<InputRequired['inputRequests']>, sessionId: string, reply: LegacyReply, cancelled: AbortSignal, options: BridgedCallOptions): Promise<Record<string, unknown> | undefined> {
  const entries = Object.entries(inputRequests)
  if (entries.length === 0) {
    await waitOrAbort(new Promise((resolve) => setTimeout(resolve, REQUEST_STATE_ONLY_PACING_MS)), cancelled)
    return undefined
  }
  // Subscribed before asking: an answer may come through another instance right away.
  await options.relay.join()
  const asked = entries.map(([key, { method, params }]) => ({ key, method, params, request: options.relay.askClient(sessionId) }))
  let timer: NodeJS.Timeout | undefined
  try {
    for (const { method, params, request } of asked) {
      await reply.event({ jsonrpc: '2.0', id: request.id, method, ...(params === undefined ? {} : { params }) })
    }
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new GatewayError('MCPGW_INPUT_TIMEOUT', { detail: `${options.inputTimeout} ms` })) }, options.inputTimeout)
    })
    const answers = await waitOrAbort(Promise.race([Promise.all(asked.map(async ({ request }) => await request.answer)), timeout]), cancelled)
    const inputResponses: Record<string, unknown> = {}
    answers.forEach((answer, index) => {
      const { key, method } = asked[index] as typeof asked[number]
      if ('error' in answer && answer.error !== undefined) {
        throw new GatewayError('MCPGW_INPUT_REFUSED', { detail: `${method}: ${answer.error.message}`, data: { inputRequest: key, error: answer.error } })
      }
      inputResponses[key] = 'result' in answer ? answer.result : undefined
    })
    return inputResponses
  } finally {
    clearTimeout(timer)
    for (const { request } of asked) request.forget()
  }
}

async function waitOrAbort<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw new Cancelled()
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(new Cancelled()) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
