/*
 * A streamed tool call (the demo upstream's `stream-two-messages`) read event by event, for the
 * shutdown tests: it tells when the stream is in flight and when, and how, it ended.
 */

export interface StreamCall {
  /** Settles once the client has read the first event (or the call ended): the stream is in flight. */
  readonly firstMessage: Promise<void>
  /** The answer read to its end (`endedAt`: when), or the error that cut it. */
  readonly finished: Promise<{ status: number, text: string, endedAt: number } | Error>
}

export function streamToolCall (origin: string, sessionId: string, gapMs: number): StreamCall {
  let sawFirstMessage = (): void => {}
  const firstMessage = new Promise<void>((resolve) => { sawFirstMessage = resolve })
  const finished = (async () => {
    try {
      const response = await fetch(`${origin}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
        body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'stream-two-messages', arguments: { gapMs } } }),
        signal: AbortSignal.timeout(20_000)
      })
      let text = ''
      const decoder = new TextDecoder()
      for await (const chunk of response.body ?? []) {
        text += decoder.decode(chunk as Uint8Array, { stream: true })
        if (text.includes('first message')) sawFirstMessage()
      }
      return { status: response.status, text, endedAt: Date.now() }
    } catch (error) {
      return error as Error
    } finally {
      sawFirstMessage()
    }
  })()
  return { firstMessage, finished }
}
