/* The MCP requests the benchmark sends, as a client sends them. */

export const toolsList = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })

// A realistic client: what the official SDK clients send in initialize, as a coding agent fills it.
export const initialize = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: {} }, clientInfo: { name: 'claude-code', version: '2.1.4' } } })

export const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }

/** A tool call the bench upstream answers with JSON at once. */
export const jsonToolCall = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } })

/**
 * A tool call the bench upstream answers with SSE: `notifications` progress notifications of about
 * 200 bytes of JSON each, then the result (bench-servers.ts).
 */
export function streamedToolCall (notifications: number): string {
  return JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'index', arguments: { path: 'src/', notifications }, _meta: { progressToken: 'bench-1' } } })
}
