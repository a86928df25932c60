import type { RouteConfig } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import type { JsonRpcMessage, JsonRpcRequest } from '../mcp/json-rpc.js'
import { LEGACY_PROTOCOL_VERSIONS } from '../mcp/protocol-versions.js'
import { SERVER_INFO_META_KEY } from '../mcp/request-metadata.js'
import type { UpstreamClient } from '../upstream/upstream-client.js'
import { upstreamMessages } from '../upstream/upstream-messages.js'
import { MODERN_VERSION, toModernRequest, type ClientIdentity } from './modern-envelope.js'

/*
 * `server/discover` (2026-07-28): what a modern server says about itself. The era bridge answers a
 * legacy client's initialize from it (docs/era-bridge.md), and an `auto` route asks it once to
 * learn which era its upstream speaks.
 */

const DISCOVER_ID = 'mcpgw-discover'

export interface DiscoverResult {
  readonly supportedVersions?: unknown
  readonly capabilities?: Record<string, unknown>
  readonly instructions?: unknown
  readonly serverInfo?: unknown
  readonly _meta?: Record<string, unknown>
}

/** Who the gateway says it is when it asks on its own behalf (the era probe). */
const GATEWAY_IDENTITY: ClientIdentity = { clientInfo: { name: 'mcp-session-gateway', version: '0' }, clientCapabilities: {} }

/** Answers that say nothing about the server's era: ask again later. */
const UNDECIDED_STATUSES = new Set([401, 403, 407, 408, 425, 429])

/** The JSON-RPC response with `id` among the messages of an answer. */
async function responseTo (messages: AsyncGenerator<JsonRpcMessage>, id: string): Promise<JsonRpcMessage | undefined> {
  for await (const message of messages) {
    if ('id' in message && message.id === id && !('method' in message)) return message
  }
  return undefined
}

/**
 * Asks the upstream `server/discover`. Resolves undefined when the answer is not a 2026-07-28
 * discover result (a legacy server refuses the method); rejects when the upstream cannot be
 * reached or `signal` aborts first (the whole answer, body included).
 */
export async function discoverServer (client: UpstreamClient, identity: ClientIdentity, headers: Record<string, string>, signal: AbortSignal): Promise<DiscoverResult | undefined> {
  const request = toModernRequest({ jsonrpc: '2.0', id: DISCOVER_ID, method: 'server/discover', params: {} }, identity)
  const answer = await client.post({ ...headers, ...request.headers }, request.body, signal)
  const message = await responseTo(upstreamMessages(answer, client.maxResponseBytes), DISCOVER_ID)
  if (message === undefined || !('result' in message)) return undefined
  const result = message.result as DiscoverResult
  const versions = Array.isArray(result.supportedVersions) ? result.supportedVersions : []
  return versions.includes(MODERN_VERSION) ? result : undefined
}

/**
 * The era probe of an `auto` route: `modern` when the upstream answers `server/discover` as a
 * 2026-07-28 server, `legacy` when it refuses it in a way that is final (a JSON-RPC error, a 4xx:
 * a legacy server does not know the method or wants a session). Rejects when the answer decides
 * nothing: unreachable, a timeout, a 5xx, an auth or rate-limit refusal, a body that is not JSON-RPC.
 */
export async function probeUpstreamEra (client: UpstreamClient, headers: Record<string, string>, timeout: number): Promise<'legacy' | 'modern'> {
  const request = toModernRequest({ jsonrpc: '2.0', id: DISCOVER_ID, method: 'server/discover', params: {} }, GATEWAY_IDENTITY)
  const answer = await client.post({ ...headers, ...request.headers }, request.body, AbortSignal.timeout(timeout))
  const status = answer.statusCode
  if (status >= 500 || UNDECIDED_STATUSES.has(status) || status < 200 || (status >= 300 && status < 400)) {
    answer.body.destroy()
    throw new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: `server/discover answered HTTP ${status}` })
  }
  let response: JsonRpcMessage | undefined
  for await (const message of upstreamMessages(answer, client.maxResponseBytes)) {
    if (!('method' in message)) {
      response = message
      break
    }
  }
  if (response === undefined && status < 400) throw new GatewayError('MCPGW_UPSTREAM_INVALID_RESPONSE', { detail: 'server/discover got no JSON-RPC answer' })
  const result = response !== undefined && 'result' in response ? response.result as DiscoverResult : undefined
  return Array.isArray(result?.supportedVersions) && result.supportedVersions.includes(MODERN_VERSION) ? 'modern' : 'legacy'
}

/**
 * Capabilities a legacy client may rely on through the bridge. Change notifications and resource
 * subscriptions reach a legacy client only on its GET stream: advertised only when the route serves
 * one (`getStream: forward`, bridged to `subscriptions/listen`).
 */
function legacyCapabilities (capabilities: Record<string, unknown> | undefined, servesGetStream: boolean): Record<string, unknown> {
  const result: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(capabilities ?? {})) {
    if (servesGetStream || typeof value !== 'object' || value === null) {
      result[name] = value
    } else {
      const { listChanged: _listChanged, subscribe: _subscribe, ...rest } = value as Record<string, unknown>
      result[name] = rest
    }
  }
  return result
}

/**
 * The InitializeResult for a legacy client, from the upstream's `server/discover`: the client's
 * version when the gateway speaks it, else the newest legacy one.
 */
export function initializeResultFrom (discovered: DiscoverResult | undefined, initialize: JsonRpcRequest, route: RouteConfig): Record<string, unknown> {
  if (discovered === undefined) throw new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: 'the upstream did not answer server/discover with 2026-07-28' })
  const params = (initialize.params ?? {}) as Record<string, unknown>
  const requested = typeof params.protocolVersion === 'string' ? params.protocolVersion : ''
  const serverInfo = discovered._meta?.[SERVER_INFO_META_KEY] ?? discovered.serverInfo ?? { name: 'mcp-server', version: '0' }
  return {
    protocolVersion: (LEGACY_PROTOCOL_VERSIONS as readonly string[]).includes(requested) ? requested : LEGACY_PROTOCOL_VERSIONS[0],
    capabilities: legacyCapabilities(discovered.capabilities, route.getStream === 'forward'),
    serverInfo,
    ...(typeof discovered.instructions === 'string' ? { instructions: discovered.instructions } : {})
  }
}
