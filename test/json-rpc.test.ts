import t from 'tap'
import { isJsonRpcMessage, parseClientPost } from '../src/mcp/json-rpc.js'

t.test('message shapes', async (t) => {
  const valid = [
    { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'x' } },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', id: 1, result: {} },
    { jsonrpc: '2.0', id: 1, error: { code: -32601, message: 'no' } },
    { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse' } }
  ]
  const invalid = [
    null, 1, 'x', [], {}, { jsonrpc: '1.0', id: 1, method: 'x' }, { jsonrpc: '2.0' },
    { jsonrpc: '2.0', id: null, method: 'x' }, { jsonrpc: '2.0', id: {}, method: 'x' }, { jsonrpc: '2.0', method: 5 },
    { jsonrpc: '2.0', method: 'x', params: 'text' }, { jsonrpc: '2.0', id: 1 }, { jsonrpc: '2.0', id: 1, result: 1, error: { code: 1, message: 'x' } },
    { jsonrpc: '2.0', id: 1, error: { code: 'x', message: 'y' } }, { jsonrpc: '2.0', id: null, result: {} }
  ]
  for (const message of valid) t.ok(isJsonRpcMessage(message), JSON.stringify(message))
  for (const message of invalid) t.notOk(isJsonRpcMessage(message), JSON.stringify(message))
})

t.test('classifies posts', async (t) => {
  const initialize = parseClientPost('{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}')
  t.equal(initialize.initialize?.id, 7)
  t.equal(initialize.rpcMethod, 'initialize')
  t.equal(initialize.id, 7)

  const call = parseClientPost(Buffer.from('{"jsonrpc":"2.0","id":"x","method":"tools/call"}'))
  t.equal(call.initialize, undefined)
  t.equal(call.containsInitialize, false)
  t.equal(call.rpcMethod, 'tools/call')

  const notification = parseClientPost('{"jsonrpc":"2.0","method":"notifications/initialized"}')
  t.equal(notification.id, null)

  const response = parseClientPost('{"jsonrpc":"2.0","id":3,"result":{}}')
  t.equal(response.rpcMethod, undefined)
  t.equal(response.id, null, 'a response has no request id to echo')

  const batch = parseClientPost('[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"initialize"}]')
  t.equal(batch.isBatch, true)
  t.equal(batch.containsInitialize, true)
  t.equal(batch.initialize, undefined, 'an initialize in a batch is never a session opener')
  t.equal(batch.rpcMethod, 'batch')
})

t.test('refusals', async (t) => {
  t.throws(() => parseClientPost(''), { code: 'MCPGW_PARSE_ERROR', statusCode: 400, jsonRpcCode: -32700 })
  t.throws(() => parseClientPost('{"jsonrpc":'), { code: 'MCPGW_PARSE_ERROR' })
  t.throws(() => parseClientPost(Buffer.from([0xff, 0xfe, 0x00])), { code: 'MCPGW_PARSE_ERROR' })
  t.throws(() => parseClientPost('[]'), { code: 'MCPGW_INVALID_REQUEST', jsonRpcCode: -32600, message: /empty batch/ })
  t.throws(() => parseClientPost('{"hello":"world"}'), { code: 'MCPGW_INVALID_REQUEST' })
  t.throws(() => parseClientPost('[{"jsonrpc":"2.0","method":"a"}, 5]'), { code: 'MCPGW_INVALID_REQUEST', message: /batch element 1/ })
  t.throws(() => parseClientPost('"just a string"'), { code: 'MCPGW_INVALID_REQUEST' })
})
