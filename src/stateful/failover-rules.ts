import type { ClientPost } from '../mcp/json-rpc.js'

/*
 * When a request may be sent again to a session's new instance after its instance failed
 * (docs/stateful-upstreams.md, "Failover"): always when it never reached the old one; otherwise
 * only when running it twice cannot matter.
 */

/** Requests with no effects: sent again whatever happened to them on the failed instance. */
const READ_ONLY_METHODS = new Set([
  'ping', 'tools/list', 'resources/list', 'resources/read', 'resources/templates/list', 'prompts/list', 'prompts/get', 'completion/complete'
])

/**
 * Failures of the connection itself, before any byte of the request reached the instance: nothing
 * ran there. A reset or a socket closed later may come after the instance read the request.
 */
const CONNECT_FAILURE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'])

/** Whether an error from the upstream client says the request never reached the instance. */
export function neverReachedInstance (error: unknown): boolean {
  let current: unknown = error
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && CONNECT_FAILURE_CODES.has(code)) return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

/**
 * Whether every message of `post` may run twice: read-only requests, and what is not a request at
 * all (notifications; answers to a server request, which a new instance ignores). A `tools/call`
 * only with `retryToolCalls`.
 */
export function mayRunTwice (post: ClientPost, retryToolCalls: boolean): boolean {
  return post.messages.every((message) => {
    if (!('method' in message) || !('id' in message)) return true
    return READ_ONLY_METHODS.has(message.method) || (retryToolCalls && message.method === 'tools/call')
  })
}
