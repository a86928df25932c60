import t from 'tap'
import { readFile } from 'node:fs/promises'
import { errorDefinitions, GatewayError, jsonRpcErrorBody } from '../src/errors.js'

/*
 * The error codes are a contract with clients and operators: every code, its HTTP status and
 * JSON-RPC code must be documented in the error table of docs/errors.md, and nothing else there.
 */

t.test('docs/errors.md documents exactly the coded errors, with their statuses', async (t) => {
  const errorTable = await readFile('docs/errors.md', 'utf8')
  const documented = new Map<string, [number, number]>()
  for (const match of errorTable.matchAll(/^\| `(MCPGW_[A-Z_]+)` \| (\d{3}) \| (-?\d+) \|/gm)) {
    documented.set(match[1] as string, [Number(match[2]), Number(match[3])])
  }
  const defined = new Map(Object.entries(errorDefinitions).map(([code, definition]) => [code, [definition.statusCode, definition.jsonRpcCode] as [number, number]]))
  t.same(Object.fromEntries(documented), Object.fromEntries(defined))
})

t.test('a coded error renders as a JSON-RPC error body', async (t) => {
  const error = new GatewayError('MCPGW_SESSION_NOT_FOUND')
  t.equal(error.statusCode, 404)
  t.same(jsonRpcErrorBody(error), { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } })
  t.equal(JSON.stringify(jsonRpcErrorBody(error)), '{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}', 'byte for byte the body the official SDK servers send')
  const detailed = new GatewayError('MCPGW_INVALID_REQUEST', { detail: 'empty batch' })
  t.same(jsonRpcErrorBody(detailed, 7), { jsonrpc: '2.0', id: 7, error: { code: -32600, message: 'Invalid Request: the body is not a JSON-RPC 2.0 message: empty batch' } })
  for (const code of Object.keys(errorDefinitions)) t.match(code, /^MCPGW_[A-Z_]+$/)
})

t.test('a stateful session lost again right after its move is a 502 for the request, its id echoed', async (t) => {
  const error = new GatewayError('MCPGW_UPSTREAM_SESSION_LOST')
  t.equal(error.statusCode, 502)
  t.match(jsonRpcErrorBody(error, 'call-1'), { jsonrpc: '2.0', id: 'call-1', error: { code: -32603, message: /forgot the session the gateway had just opened/ } })
})
