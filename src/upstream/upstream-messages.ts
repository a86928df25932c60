import { GatewayError } from '../errors.js'
import { isJsonRpcMessage, parseJsonText, type JsonRpcMessage } from '../mcp/json-rpc.js'
import { mediaType } from '../mcp/media-type.js'
import { SseParser } from '../mcp/sse-parser.js'
import type { UpstreamAnswer } from './upstream-client.js'

function messageOf (text: string): JsonRpcMessage | undefined {
  const parsed = parseJsonText(text)
  return isJsonRpcMessage(parsed) ? parsed : undefined
}

/**
 * A whole upstream body as text, read up to `maxBytes` (limits.maxResponseBytes): a larger one is
 * MCPGW_UPSTREAM_RESPONSE_TOO_LARGE, never held in memory.
 */
export async function readUpstreamBody (body: UpstreamAnswer['body'], maxBytes: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of body) {
      size += (chunk as Buffer).length
      if (size > maxBytes) throw new GatewayError('MCPGW_UPSTREAM_RESPONSE_TOO_LARGE', { detail: `a body of more than ${maxBytes} bytes` })
      chunks.push(chunk as Buffer)
    }
  } finally {
    body.destroy()
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * The JSON-RPC messages of an upstream answer to a request the gateway made, as they arrive: the
 * one message of a JSON body, or each SSE event's. Anything that is not a JSON-RPC message is
 * skipped. A JSON body or one event larger than `maxBytes` is MCPGW_UPSTREAM_RESPONSE_TOO_LARGE.
 * The consumer paces the reading: the next chunk is read only when it asks for the next message
 * (backpressure reaches the upstream). Leaving the loop early closes the body, which for a modern
 * upstream is also the cancellation signal.
 */
export async function * upstreamMessages (answer: UpstreamAnswer, maxBytes: number): AsyncGenerator<JsonRpcMessage> {
  try {
    if (mediaType(answer.headers['content-type']) !== 'text/event-stream') {
      const message = messageOf(await readUpstreamBody(answer.body, maxBytes))
      if (message !== undefined) yield message
      return
    }
    const parser = new SseParser(maxBytes)
    for await (const chunk of answer.body) {
      for (const event of parser.push(chunk as Buffer)) {
        const message = messageOf(event.data)
        if (message !== undefined) yield message
      }
    }
    // At the end, a blank line completes an event the upstream left unterminated.
    for (const event of parser.push(Buffer.from('\n\n'))) {
      const message = messageOf(event.data)
      if (message !== undefined) yield message
    }
  } finally {
    answer.body.destroy()
  }
}
