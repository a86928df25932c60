import { randomBytes } from 'node:crypto'
import { isJsonObject, type JsonRpcMessage } from '../mcp/json-rpc.js'
import type { ReplicaRelay } from '../sessions/replica-relay.js'
import type { BridgeState } from '../sessions/session-store.js'
import { isSuccessStatus, type UpstreamClient } from '../upstream/upstream-client.js'
import { upstreamMessages } from '../upstream/upstream-messages.js'
import type { LegacyReply } from './legacy-reply.js'
import { toModernRequest, withoutModernMeta, type ClientIdentity } from './modern-envelope.js'

/*
 * The legacy GET stream of a bridged session (docs/era-bridge.md). A 2026-07-28 server has no GET stream: a
 * client asks for change notifications with a `subscriptions/listen` request whose response stream
 * stays open, carrying the notifications its filter selects. The gateway opens one for the legacy
 * client's GET, with every list-changed kind and the resources the client subscribed to
 * (`resources/subscribe`, answered by the gateway and kept in the session), and relays what comes,
 * without the modern-only acknowledgement and subscription-id stamp. When the client subscribes or
 * unsubscribes (on any instance) the listen request is replaced by one with the new filter; when the
 * session ends (DELETE on any instance), the stream ends.
 */

export interface ListenStreamOptions {
  /** The route's upstream client: its pool bounds the wait for the response headers. */
  readonly upstream: UpstreamClient
  readonly headers: Record<string, string>
  readonly relay: ReplicaRelay
  /** Told why a listen request ended with an error (logged at debug: a dropped stream is ordinary). */
  readonly onListenEnded: (error: unknown) => void
  /** The session's current identity and bridge state; null once the session is gone. */
  readonly readSession: () => Promise<{ identity: ClientIdentity, bridge: BridgeState } | null>
}

function filterFor (bridge: BridgeState): Record<string, unknown> {
  return {
    toolsListChanged: true,
    promptsListChanged: true,
    resourcesListChanged: true,
    ...(bridge.resourceSubscriptions.length > 0 ? { resourceSubscriptions: [...bridge.resourceSubscriptions] } : {})
  }
}

/** A modern change notification as the legacy revision has it (no acknowledgement, no envelope keys). */
function legacyNotification (message: JsonRpcMessage): JsonRpcMessage | undefined {
  if (!('method' in message) || 'id' in message || message.method === 'notifications/subscriptions/acknowledged') return undefined
  return isJsonObject(message.params) ? { ...message, params: withoutModernMeta(message.params) } : message
}

/**
 * Serves the GET stream until the client leaves, the session ends or the upstream ends the listen
 * stream without a filter change (the client then opens a new GET, as after any dropped stream).
 */
export async function serveListenStream (sessionId: string, reply: LegacyReply, clientGone: AbortSignal, options: ListenStreamOptions): Promise<void> {
  await options.relay.join()
  let current: AbortController | undefined
  let changed = false
  const unwatch = options.relay.watchSession(sessionId, () => {
    changed = true
    current?.abort()
  })
  const onGone = (): void => { current?.abort() }
  clientGone.addEventListener('abort', onGone, { once: true })
  // The client sees the stream open at once, as with a legacy server.
  reply.open()
  try {
    while (!clientGone.aborted) {
      changed = false
      const session = await options.readSession()
      if (session === null) return
      // Changed again while it was being read: read once more, the filter may be stale.
      if (changed) continue
      current = new AbortController()
      await listenOnce(session.identity, filterFor(session.bridge), reply, current.signal, options).catch((error: unknown) => {
        // Aborted by a filter change or the client leaving, or the upstream failed: the loop decides.
        options.onListenEnded(error)
      })
      if (!changed) return
    }
  } finally {
    unwatch()
    clientGone.removeEventListener('abort', onGone)
    current?.abort()
    reply.end()
  }
}

async function listenOnce (identity: ClientIdentity, filter: Record<string, unknown>, reply: LegacyReply, signal: AbortSignal, options: ListenStreamOptions): Promise<void> {
  const id = `mcpgw-listen-${randomBytes(9).toString('base64url')}`
  const request = toModernRequest({ jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { notifications: filter } }, identity)
  const answer = await options.upstream.post({ ...options.headers, ...request.headers }, request.body, signal)
  if (!isSuccessStatus(answer.statusCode)) {
    answer.body.destroy()
    return
  }
  for await (const message of upstreamMessages(answer, options.upstream.maxResponseBytes)) {
    // The listen request's own response (a result or an error) means the subscription ended.
    if ('id' in message && message.id === id && !('method' in message)) return
    const notification = legacyNotification(message)
    if (notification !== undefined) await reply.event(notification)
  }
}
