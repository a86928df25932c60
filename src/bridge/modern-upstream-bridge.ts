import type { RouteConfig, UpstreamEra } from '../config/validate-config.js'
import { GatewayError } from '../errors.js'
import type { JsonRpcMessage, JsonRpcNotification, JsonRpcRequest } from '../mcp/json-rpc.js'
import { LEGACY_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS, PROTOCOL_VERSION_META_KEY } from '../mcp/protocol-versions.js'
import { CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, encodeHeaderValue, LOG_LEVEL_META_KEY, mcpNameOf, SERVER_INFO_META_KEY } from '../mcp/request-metadata.js'
import { upstreamMessages } from './upstream-messages.js'
import { postUpstream } from './upstream-post.js'

/*
 * The era bridge (issue #6): a legacy client (initialize + session) in front of an upstream that only
 * speaks 2026-07-28 (no initialize, no sessions, every request carrying the client's identity in
 * `_meta`). The gateway already holds what a modern server needs on every request, in the session:
 *   - initialize is answered here, from the upstream's `server/discover`;
 *   - every later legacy request is rewritten as a modern one: `params._meta` gets the protocol
 *     version, client info and capabilities (and the log level the client set), and the mirrored
 *     headers are set (bridged-call.ts runs the request, listen-stream.ts the GET stream).
 * `auto` asks `server/discover` once per route and remembers the answer.
 */

const MODERN_VERSION = MODERN_PROTOCOL_VERSIONS[0]
const DISCOVER_ID = 'mcpgw-discover'

export interface ClientIdentity {
  readonly clientInfo: unknown
  readonly clientCapabilities: unknown
  /** From the client's `logging/setLevel`, answered by the gateway; undefined: never set. */
  readonly logLevel?: string | undefined
}

export interface ModernRequest {
  readonly body: string
  readonly headers: Record<string, string>
}

interface DiscoverResult {
  readonly supportedVersions?: unknown
  readonly capabilities?: Record<string, unknown>
  readonly instructions?: unknown
  readonly serverInfo?: unknown
  readonly _meta?: Record<string, unknown>
}

/** The JSON-RPC response with `id` in a JSON or SSE body. */
async function readResponse (response: Response, id: string): Promise<JsonRpcMessage | undefined> {
  for await (const message of upstreamMessages(response)) {
    if ('id' in message && message.id === id && !('method' in message)) return message
  }
  return undefined
}

/** The modern headers every bridged POST carries. */
function modernHeaders (method: string, params: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': method }
  const name = mcpNameOf(method, params)?.value
  if (name !== undefined) headers['mcp-name'] = encodeHeaderValue(name)
  return headers
}

/**
 * A legacy client's capabilities as a modern server reads them. `elicitation: {}` meant form mode
 * until 2025-11-25 (which keeps that reading "for backwards compatibility"); 2026-07-28 servers
 * check for `elicitation.form` itself.
 */
export function modernClientCapabilities (capabilities: unknown): Record<string, unknown> {
  if (typeof capabilities !== 'object' || capabilities === null || Array.isArray(capabilities)) return {}
  const { elicitation, ...rest } = capabilities as Record<string, unknown>
  if (typeof elicitation !== 'object' || elicitation === null) return capabilities as Record<string, unknown>
  const modes = elicitation as Record<string, unknown>
  return { ...rest, elicitation: modes.form === undefined && modes.url === undefined ? { ...modes, form: {} } : modes }
}

function envelope (identity: ClientIdentity): Record<string, unknown> {
  return {
    [PROTOCOL_VERSION_META_KEY]: MODERN_VERSION,
    [CLIENT_INFO_META_KEY]: identity.clientInfo ?? {},
    [CLIENT_CAPABILITIES_META_KEY]: modernClientCapabilities(identity.clientCapabilities),
    ...(identity.logLevel === undefined ? {} : { [LOG_LEVEL_META_KEY]: identity.logLevel })
  }
}

/** A legacy request or notification as the modern upstream expects it. */
export function toModernRequest (message: JsonRpcRequest | JsonRpcNotification, identity: ClientIdentity): ModernRequest {
  const params = (typeof message.params === 'object' && message.params !== null && !Array.isArray(message.params) ? message.params : {}) as Record<string, unknown>
  const meta = typeof params._meta === 'object' && params._meta !== null ? params._meta as Record<string, unknown> : {}
  const body = { ...message, params: { ...params, _meta: { ...meta, ...envelope(identity) } } }
  return { body: JSON.stringify(body), headers: modernHeaders(message.method, params) }
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

export class ModernUpstreamBridge {
  readonly #route: RouteConfig
  readonly #configuredEra: UpstreamEra
  #probe: Promise<'legacy' | 'modern'> | undefined
  #known: 'legacy' | 'modern' | undefined

  constructor (route: RouteConfig) {
    this.#route = route
    this.#configuredEra = route.upstreamEra
  }

  async #discover (identity: ClientIdentity, headers: Record<string, string> = {}): Promise<DiscoverResult | undefined> {
    const request = toModernRequest({ jsonrpc: '2.0', id: DISCOVER_ID, method: 'server/discover', params: {} }, identity)
    const response = await postUpstream(this.#route.upstream, headers, request, AbortSignal.timeout(this.#route.timeout), this.#route.timeout)
    const message = await readResponse(response, DISCOVER_ID)
    if (message === undefined || !('result' in message)) return undefined
    const result = message.result as DiscoverResult
    const versions = Array.isArray(result.supportedVersions) ? result.supportedVersions : []
    return versions.includes(MODERN_VERSION) ? result : undefined
  }

  /** The era when it is already known (configured, or probed), without waiting. */
  knownEra (): 'legacy' | 'modern' | undefined {
    return this.#configuredEra !== 'auto' ? this.#configuredEra : this.#known
  }

  /** Which era the upstream speaks: configured, or probed once (a failed probe is retried next time). */
  async era (): Promise<'legacy' | 'modern'> {
    if (this.#configuredEra !== 'auto') return this.#configuredEra
    this.#probe ??= this.#discover({ clientInfo: { name: 'mcp-session-gateway', version: '0' }, clientCapabilities: {} })
      .then((result) => {
        this.#known = result === undefined ? 'legacy' : 'modern'
        return this.#known
      }, (error: unknown) => {
        this.#probe = undefined
        throw error
      })
    return await this.#probe.catch(() => 'legacy' as const)
  }

  /**
   * The InitializeResult for a legacy client, from the upstream's `server/discover`: the client's
   * version when the gateway speaks it, else the newest legacy one.
   */
  async initializeResult (initialize: JsonRpcRequest, headers: Record<string, string>): Promise<Record<string, unknown>> {
    const params = (initialize.params ?? {}) as Record<string, unknown>
    let discovered: DiscoverResult | undefined
    try {
      discovered = await this.#discover({ clientInfo: params.clientInfo, clientCapabilities: params.capabilities }, headers)
    } catch (error) {
      if (error instanceof GatewayError) throw error
      throw (error as Error).name === 'TimeoutError' ? new GatewayError('MCPGW_UPSTREAM_TIMEOUT', { cause: error }) : new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { cause: error })
    }
    if (discovered === undefined) throw new GatewayError('MCPGW_UPSTREAM_UNREACHABLE', { detail: 'the upstream did not answer server/discover with 2026-07-28' })
    const requested = typeof params.protocolVersion === 'string' ? params.protocolVersion : ''
    const serverInfo = discovered._meta?.[SERVER_INFO_META_KEY] ?? discovered.serverInfo ?? { name: 'mcp-server', version: '0' }
    return {
      protocolVersion: (LEGACY_PROTOCOL_VERSIONS as readonly string[]).includes(requested) ? requested : LEGACY_PROTOCOL_VERSIONS[0],
      capabilities: legacyCapabilities(discovered.capabilities, this.#route.getStream === 'forward'),
      serverInfo,
      ...(typeof discovered.instructions === 'string' ? { instructions: discovered.instructions } : {})
    }
  }
}
