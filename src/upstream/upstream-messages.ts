import { isJsonRpcMessage, parseJsonText, type JsonRpcMessage } from '../mcp/json-rpc.js'
import { mediaType } from '../mcp/media-type.js'
import { SseParser } from '../mcp/sse-parser.js'
import type { UpstreamAnswer } from './upstream-client.js'

function messageOf (text: string): JsonRpcMessage | undefined {
  const parsed = parseJsonText(text)
  return isJsonRpcMessage(parsed) ? parsed : undefined
}

/**
 * The JSON-RPC messages of an upstream answer to a request the gateway made, as they arrive: the
 * one message of a JSON body, or each SSE event's. Anything that is not a JSON-RPC message is
 * skipped. Leaving the loop early closes the body, which for a modern upstream is also the
 * cancellation signal.
 */
export async function * upstreamMessages (answer: UpstreamAnswer): AsyncGenerator<JsonRpcMessage> {
  try {
    if (mediaType(answer.headers['content-type']) !== 'text/event-stream') {
      const message = messageOf(await answer.body.text())
      if (message !== undefined) yield message
      return
    }
    const parser = new SseParser()
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
