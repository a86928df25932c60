import { mediaType } from '../mcp/initialize-response.js'
import { isJsonRpcMessage, type JsonRpcMessage } from '../mcp/json-rpc.js'
import { SseParser } from '../mcp/sse-parser.js'

function parseMessage (text: string): JsonRpcMessage | undefined {
  try {
    const parsed: unknown = JSON.parse(text)
    return isJsonRpcMessage(parsed) ? parsed : undefined
  } catch {
    return undefined
  }
}

/**
 * The JSON-RPC messages of an upstream answer to a bridged request, as they arrive: the one message
 * of a JSON body, or each SSE event's. Anything that is not a JSON-RPC message is skipped. Leaving
 * the loop early closes the body, which for a modern upstream is also the cancellation signal.
 */
export async function * upstreamMessages (response: Response): AsyncGenerator<JsonRpcMessage> {
  if (response.body === null) return
  if (mediaType(response.headers.get('content-type') ?? undefined) !== 'text/event-stream') {
    const message = parseMessage(await response.text())
    if (message !== undefined) yield message
    return
  }
  const parser = new SseParser()
  const reader = response.body.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      // At the end, a blank line completes an event the upstream left unterminated.
      for (const event of parser.push(Buffer.from(done ? '\n\n' : value))) {
        const message = parseMessage(event.data)
        if (message !== undefined) yield message
      }
      if (done) return
    }
  } finally {
    reader.cancel().catch(() => undefined)
  }
}
