import { GatewayError } from '../errors.js'
import { inspectInitializeResponse } from '../mcp/initialize-response.js'
import { isJsonObject, type JsonRpcRequest } from '../mcp/json-rpc.js'
import type { UpstreamSessionRef } from '../sessions/session-store.js'
import { isSuccessStatus, type UpstreamAnswer } from '../upstream/upstream-client.js'
import { SESSION_HEADER } from '../upstream/upstream-headers.js'
import type { UpstreamInstance } from './upstream-instances.js'

/*
 * The gateway's own requests to a stateful instance (docs/stateful-upstreams.md): opening an upstream
 * session again after a failover, by replaying what the client did when it opened its own
 * (initialize, notifications/initialized, the log level, the resource subscriptions), and ending
 * one when its gateway session ends.
 */

/** The longest a protocol version the client asked for may be and still be kept for a replay. */
const MAX_VERSION_LENGTH = 64

/**
 * What is kept of the client's initialize for a replay: its id and the three params a server reads
 * (`capabilities` and `clientInfo` already bounded by limits.maxClientStateBytes). Anything else the
 * client sent is not kept: a session's Redis stays bounded.
 */
export function storedInitialize (initialize: JsonRpcRequest): string {
  const params = isJsonObject(initialize.params) ? initialize.params : {}
  const version = typeof params.protocolVersion === 'string' && params.protocolVersion.length <= MAX_VERSION_LENGTH ? params.protocolVersion : undefined
  return JSON.stringify({
    jsonrpc: '2.0',
    id: initialize.id,
    method: 'initialize',
    params: { protocolVersion: version, capabilities: params.capabilities ?? {}, clientInfo: params.clientInfo ?? null }
  })
}

/** What a new upstream session must be told so that it is the session the client knows. */
export interface UpstreamSessionReplay {
  /** The stored initialize request (storedInitialize). */
  readonly initialize: string
  /** The version the session negotiated: the MCP-Protocol-Version of the requests after initialize. */
  readonly protocolVersion: string
  readonly logLevel?: string | undefined
  readonly resourceSubscriptions: readonly string[]
}

/** Thrown when the instance answered, but not with a session: another instance may do better. */
export class ReplayRefused extends Error {}

async function discard (answer: UpstreamAnswer): Promise<void> {
  await answer.body.dump().catch(() => undefined)
}

/**
 * Opens a new upstream session on `instance` and brings it to the client's state. `headers`: the
 * client's own (its Authorization, say) as for a forwarded request, without session or version.
 * Rejects with the upstream client's error when the instance cannot be reached, ReplayRefused when
 * it answered without a session, and ends what it opened when a later step fails.
 */
export async function openUpstreamSession (instance: UpstreamInstance, replay: UpstreamSessionReplay, headers: Record<string, string>, signal: AbortSignal): Promise<UpstreamSessionRef> {
  const initialize = JSON.parse(replay.initialize) as JsonRpcRequest
  const answer = await instance.client.post(headers, replay.initialize, signal)
  if (!isSuccessStatus(answer.statusCode)) {
    await discard(answer)
    throw new ReplayRefused(`the instance answered the replayed initialize with HTTP ${answer.statusCode}`)
  }
  const inspected = await inspectInitializeResponse(answer.body, answer.headers['content-type'], initialize.id, instance.client.maxResponseBytes)
  inspected.body.destroy()
  if (!inspected.outcome.minted) throw new ReplayRefused(`the instance answered the replayed initialize without a result (${inspected.outcome.reason})`)
  const assigned = answer.headers[SESSION_HEADER]
  const ref: UpstreamSessionRef = { instance: instance.url, sessionId: typeof assigned === 'string' ? assigned : '' }
  const inSession = { ...headers, ...(ref.sessionId === '' ? {} : { [SESSION_HEADER]: ref.sessionId }), 'mcp-protocol-version': replay.protocolVersion }
  try {
    const messages: Array<Record<string, unknown>> = [{ jsonrpc: '2.0', method: 'notifications/initialized' }]
    if (replay.logLevel !== undefined) messages.push({ jsonrpc: '2.0', id: 'mcpgw-replay-level', method: 'logging/setLevel', params: { level: replay.logLevel } })
    replay.resourceSubscriptions.forEach((uri, index) => {
      messages.push({ jsonrpc: '2.0', id: `mcpgw-replay-subscribe-${index}`, method: 'resources/subscribe', params: { uri } })
    })
    for (const message of messages) {
      const step = await instance.client.post(inSession, JSON.stringify(message), signal)
      await discard(step)
      if (!isSuccessStatus(step.statusCode)) throw new ReplayRefused(`the instance answered the replayed ${String(message.method)} with HTTP ${step.statusCode}`)
    }
  } catch (error) {
    await closeUpstreamSession(instance, ref, headers, signal).catch(() => undefined)
    throw error
  }
  return ref
}

/**
 * Ends an upstream session (MCP 2025-11-25, Basic › Transports › Session Management: DELETE with its
 * id). Resolves with the instance's status; 404 means it had already forgotten the session.
 */
export async function closeUpstreamSession (instance: UpstreamInstance, ref: UpstreamSessionRef, headers: Record<string, string>, signal: AbortSignal): Promise<number> {
  if (ref.sessionId === '') return 204
  const answer = await instance.client.delete({ ...headers, [SESSION_HEADER]: ref.sessionId }, signal)
  await discard(answer)
  if (!isSuccessStatus(answer.statusCode) && answer.statusCode !== 404) throw new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: `the instance answered DELETE with HTTP ${answer.statusCode}` })
  return answer.statusCode
}
