import { inspectInitializeResponse } from '../mcp/initialize-response.js'
import type { UpstreamSessionRef } from '../sessions/session-store.js'
import { isSuccessStatus, type UpstreamAnswer } from '../upstream/upstream-client.js'
import { SESSION_HEADER } from '../upstream/upstream-headers.js'
import type { UpstreamInstance } from './upstream-instances.js'

/*
 * The gateway's own requests to a stateful instance (docs/stateful-upstreams.md): opening an upstream
 * session again after a failover, by replaying what the client did when it opened its own
 * (initialize with the negotiated version, notifications/initialized, the log level, the resource
 * subscriptions), and ending one when its gateway session ends.
 */

/**
 * What a new upstream session must be told so that it is the session the client knows: what every
 * session keeps of its client and the version it negotiated (its initialize, replayed), and the
 * settings the client made since (docs/stateful-upstreams.md, "Failover").
 */
export interface UpstreamSessionReplay {
  /** The version the session negotiated: asked for again, and the MCP-Protocol-Version of what follows. */
  readonly protocolVersion: string
  readonly clientInfo: unknown
  readonly clientCapabilities: unknown
  readonly logLevel?: string | undefined
  readonly resourceSubscriptions: readonly string[]
}

/** The id of the gateway's own initialize: its answer is read by the gateway only. */
const REPLAY_ID = 'mcpgw-replay'

/** Thrown when the instance answered, but not with a session: another instance may do better. */
export class ReplayRefused extends Error {}

/**
 * Thrown when the instance answered 404 within the session it had just opened: it forgets sessions
 * at once, and opening another one anywhere for this request would only repeat that
 * (docs/stateful-upstreams.md, "Failover").
 */
export class ReplayForgotten extends ReplayRefused {}

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
  const initialize = { jsonrpc: '2.0', id: REPLAY_ID, method: 'initialize', params: { protocolVersion: replay.protocolVersion, capabilities: replay.clientCapabilities ?? {}, clientInfo: replay.clientInfo } }
  const answer = await instance.client.post(headers, JSON.stringify(initialize), signal)
  if (!isSuccessStatus(answer.statusCode)) {
    await discard(answer)
    throw new ReplayRefused(`the instance answered the replayed initialize with HTTP ${answer.statusCode}`)
  }
  const inspected = await inspectInitializeResponse(answer.body, answer.headers['content-type'], REPLAY_ID, instance.client.maxResponseBytes)
  inspected.body.destroy()
  if (!inspected.outcome.minted) throw new ReplayRefused(`the instance answered the replayed initialize without a result (${inspected.outcome.reason})`)
  const assigned = answer.headers[SESSION_HEADER]
  const ref: UpstreamSessionRef = { instance: instance.key, sessionId: typeof assigned === 'string' ? assigned : '' }
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
      if (step.statusCode === 404 && ref.sessionId !== '') throw new ReplayForgotten(`the instance answered the replayed ${String(message.method)} with 404: it forgot the session it had just opened`)
      if (!isSuccessStatus(step.statusCode)) throw new ReplayRefused(`the instance answered the replayed ${String(message.method)} with HTTP ${step.statusCode}`)
    }
  } catch (error) {
    // An instance that said it does not know the session has nothing to end.
    if (!(error instanceof ReplayForgotten)) await closeUpstreamSession(instance, ref, headers, signal).catch(() => undefined)
    throw error
  }
  return ref
}

/**
 * Ends an upstream session (MCP 2025-11-25, Basic › Transports › Session Management: DELETE with its
 * id). Resolves with the instance's status (404: it had already forgotten the session; 401 or 403:
 * it wants credentials the gateway did not have); rejects when the instance cannot be reached.
 */
export async function closeUpstreamSession (instance: UpstreamInstance, ref: UpstreamSessionRef, headers: Record<string, string>, signal: AbortSignal): Promise<number> {
  if (ref.sessionId === '') return 204
  const answer = await instance.client.delete({ ...headers, [SESSION_HEADER]: ref.sessionId }, signal)
  await discard(answer)
  return answer.statusCode
}

/** Whether a DELETE's status means the upstream session is gone. */
export function upstreamSessionEnded (status: number): boolean {
  return isSuccessStatus(status) || status === 404
}
