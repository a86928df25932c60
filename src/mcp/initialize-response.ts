import { PassThrough, type Readable } from 'node:stream'
import { GatewayError } from '../errors.js'
import { isJsonRpcMessage, parseJsonText, type JsonRpcResponse } from './json-rpc.js'
import { mediaType } from './media-type.js'
import { isSupportedLegacyVersion } from './protocol-versions.js'
import { SseParser } from './sse-parser.js'

/*
 * A session is minted only when the upstream's reply carries a JSON-RPC *result* for the client's
 * initialize request, naming a legacy protocol version the gateway knows (MCP 2025-11-25, Basic ›
 * Lifecycle › Initialization, and Transports › Session Management). HTTP 200 proves nothing: the error may be inside
 * it, and the stateless TypeScript SDK answers initialize with an SSE body. So the gateway reads
 * the reply up to that response (JSON: the whole body; SSE: event by event, notifications before it
 * included), decides, and then sends the bytes it read followed by the rest of the stream, unchanged.
 */

export type InitializeOutcome =
  | { readonly minted: true, readonly protocolVersion: string }
  | { readonly minted: false, readonly reason: 'error-response' | 'no-result' | 'invalid-result' | 'unsupported-content-type' }

export interface InspectedInitializeResponse {
  readonly outcome: InitializeOutcome
  /** The whole reply body as the upstream sent it: the inspected bytes, then whatever follows. */
  readonly body: Readable
}

type Decision = InitializeOutcome | undefined

/** Decides from one JSON-RPC message, or undefined when it is not the response to `requestId`. */
function decideFromMessage (message: unknown, requestId: string | number): Decision {
  if (!isJsonRpcMessage(message) || !('id' in message) || message.id !== requestId || 'method' in message) return undefined
  const response = message as JsonRpcResponse
  if (response.error !== undefined) return { minted: false, reason: 'error-response' }
  const result = response.result
  const protocolVersion = typeof result === 'object' && result !== null ? (result as { protocolVersion?: unknown }).protocolVersion : undefined
  // The version is stored with the session and sent on every request of it: only a revision the
  // gateway knows (Basic › Lifecycle › Version Negotiation) may be kept, never whatever the upstream wrote.
  if (typeof protocolVersion !== 'string' || !isSupportedLegacyVersion(protocolVersion)) return { minted: false, reason: 'invalid-result' }
  return { minted: true, protocolVersion }
}

/**
 * Reads `upstreamBody` until the outcome is known and returns it with a stream that replays what was
 * read and then passes the rest through (an SSE stream keeps streaming after the decision).
 */
export async function inspectInitializeResponse (
  upstreamBody: Readable,
  contentType: string | string[] | undefined,
  requestId: string | number,
  /** limits.maxResponseBytes: the most that is read (and held) before the answer must be known. */
  maxBytes: number
): Promise<InspectedInitializeResponse> {
  const type = mediaType(contentType)
  if (type !== 'application/json' && type !== 'text/event-stream') {
    return { outcome: { minted: false, reason: 'unsupported-content-type' }, body: upstreamBody }
  }
  const isSse = type === 'text/event-stream'
  const sseParser = isSse ? new SseParser() : undefined
  const chunks: Buffer[] = []
  let size = 0

  const outcome = await new Promise<InitializeOutcome>((resolve, reject) => {
    const finish = (decision: InitializeOutcome): void => {
      upstreamBody.off('data', onData)
      upstreamBody.off('end', onEnd)
      upstreamBody.off('error', onError)
      upstreamBody.pause()
      resolve(decision)
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      size += chunk.length
      if (sseParser !== undefined) {
        for (const event of sseParser.push(chunk)) {
          if (event.event !== 'message') continue
          const decision = decideFromMessage(parseJsonText(event.data), requestId)
          if (decision !== undefined) return finish(decision)
        }
      }
      if (size > maxBytes) {
        upstreamBody.off('data', onData)
        upstreamBody.off('end', onEnd)
        reject(new GatewayError('MCPGW_UPSTREAM_RESPONSE_TOO_LARGE', { detail: `no initialize answer in the first ${maxBytes} bytes` }))
      }
    }
    const onEnd = (): void => {
      const decision = isSse ? undefined : decideFromMessage(parseJsonText(Buffer.concat(chunks).toString('utf8')), requestId)
      finish(decision ?? { minted: false, reason: 'no-result' })
    }
    const onError = (error: Error): void => {
      upstreamBody.off('data', onData)
      upstreamBody.off('end', onEnd)
      reject(error)
    }
    upstreamBody.on('data', onData)
    upstreamBody.once('end', onEnd)
    upstreamBody.once('error', onError)
  })

  const body = new PassThrough()
  for (const chunk of chunks) body.write(chunk)
  if (upstreamBody.readableEnded) {
    body.end()
  } else {
    upstreamBody.once('error', (error) => body.destroy(error))
    body.once('close', () => { if (!upstreamBody.readableEnded) upstreamBody.destroy() })
    upstreamBody.pipe(body)
  }
  return { outcome, body }
}
