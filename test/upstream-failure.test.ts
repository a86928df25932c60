import t from 'tap'
import { GatewayError } from '../src/errors.js'
import { isUpstreamFailure, upstreamFailure, upstreamFailureKind } from '../src/upstream/upstream-failure.js'

/*
 * Upstream failures map to HTTP in one place (docs/errors.md): refused or dropped → 502, an answer
 * that cannot be read → 502 of its own code, no answer in time → 504, a coded error unchanged, anything else a fault of the gateway's own → 500, never
 * counted as an upstream error.
 */

function codedError (code: string, message = code): Error {
  return Object.assign(new Error(message), { code })
}

t.test('a RangeError is the gateway\'s own fault: 500, not an upstream failure', async (t) => {
  const failure = upstreamFailure(new RangeError('Maximum call stack size exceeded'))
  t.equal(failure.code, 'MCPGW_INTERNAL_ERROR')
  t.equal(failure.statusCode, 500)
  t.equal(failure.jsonRpcCode, -32603)
  t.type(failure.cause, RangeError, 'the cause is kept for the log')
  t.equal(isUpstreamFailure(failure), false)
  t.equal(upstreamFailure('a string').code, 'MCPGW_INTERNAL_ERROR', 'anything thrown that is not an error')
  t.equal(upstreamFailure(undefined).code, 'MCPGW_INTERNAL_ERROR')
})

t.test('connection failures are 502', async (t) => {
  for (const error of [
    codedError('ECONNREFUSED'),
    codedError('ECONNRESET'),
    codedError('UND_ERR_SOCKET'),
    new TypeError('fetch failed', { cause: codedError('ECONNREFUSED') }),
    new Error('outer', { cause: new Error('middle', { cause: codedError('EPIPE') }) }),
    Object.assign(new Error('aborted'), { name: 'AbortError' })
  ]) {
    const failure = upstreamFailure(error)
    t.equal(failure.code, 'MCPGW_UPSTREAM_UNREACHABLE', error.message)
    t.equal(failure.statusCode, 502)
    t.equal(isUpstreamFailure(failure), true)
    t.equal(upstreamFailureKind(failure), 'unreachable')
  }
})

t.test('timeouts are 504', async (t) => {
  for (const error of [
    codedError('UND_ERR_HEADERS_TIMEOUT'),
    codedError('UND_ERR_CONNECT_TIMEOUT'),
    codedError('FST_REPLY_FROM_GATEWAY_TIMEOUT'),
    new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    new Error('wrapped', { cause: codedError('UND_ERR_BODY_TIMEOUT') })
  ]) {
    const failure = upstreamFailure(error)
    t.equal(failure.code, 'MCPGW_UPSTREAM_TIMEOUT', error.message)
    t.equal(failure.statusCode, 504)
    t.equal(isUpstreamFailure(failure), true)
    t.equal(upstreamFailureKind(failure), 'timeout')
  }
})

t.test('an answer undici cannot read is an invalid answer (502), not an unreachable upstream', async (t) => {
  const parserError = Object.assign(new Error('Response does not match the HTTP/1.1 protocol (Invalid header token)'), { name: 'HTTPParserError' })
  for (const [error, detail] of [
    [codedError('UND_ERR_HEADERS_OVERFLOW', 'Headers Overflow Error'), /header section is larger/],
    [parserError, /not a valid HTTP response/],
    [codedError('HPE_INVALID_CONSTANT'), /not a valid HTTP response/],
    [codedError('UND_ERR_RES_CONTENT_LENGTH_MISMATCH'), /Content-Length/],
    [new Error('wrapped', { cause: codedError('UND_ERR_RES_EXCEEDED_MAX_SIZE') }), /larger than the gateway reads/]
  ] as const) {
    const failure = upstreamFailure(error)
    t.equal(failure.code, 'MCPGW_UPSTREAM_INVALID_RESPONSE', error.message)
    t.equal(failure.statusCode, 502)
    t.match(failure.message, detail)
    t.equal(upstreamFailureKind(failure), 'invalid')
  }
  t.equal(upstreamFailure(codedError('UND_ERR_SOCKET', 'other side closed')).code, 'MCPGW_UPSTREAM_UNREACHABLE', 'a connection closed mid-answer stays unreachable')
})

t.test('a timeout anywhere in the chain wins over a connection code', async (t) => {
  t.equal(upstreamFailure(new Error('reset', { cause: codedError('UND_ERR_HEADERS_TIMEOUT') })).code, 'MCPGW_UPSTREAM_TIMEOUT')
})

t.test('a GatewayError passes unchanged', async (t) => {
  for (const code of ['MCPGW_UPSTREAM_INVALID_RESPONSE', 'MCPGW_UPSTREAM_RESPONSE_TOO_LARGE', 'MCPGW_INPUT_TIMEOUT', 'MCPGW_SESSION_NOT_FOUND'] as const) {
    const error = new GatewayError(code)
    t.equal(upstreamFailure(error), error, code)
  }
})

t.test('isUpstreamFailure and upstreamFailureKind', async (t) => {
  t.equal(upstreamFailureKind(new GatewayError('MCPGW_UPSTREAM_INVALID_RESPONSE')), 'invalid')
  t.equal(upstreamFailureKind(new GatewayError('MCPGW_UPSTREAM_RESPONSE_TOO_LARGE')), 'too_large')
  t.equal(upstreamFailureKind(new GatewayError('MCPGW_UPSTREAM_TIMEOUT')), 'timeout')
  t.equal(upstreamFailureKind(new GatewayError('MCPGW_UPSTREAM_UNREACHABLE')), 'unreachable')
  t.equal(upstreamFailureKind(new GatewayError('MCPGW_UPSTREAM_SESSION_LOST')), 'session_lost')
  t.equal(isUpstreamFailure(new GatewayError('MCPGW_UPSTREAM_INVALID_RESPONSE')), true)
  t.equal(isUpstreamFailure(new GatewayError('MCPGW_INTERNAL_ERROR')), false)
  t.equal(isUpstreamFailure(new GatewayError('MCPGW_INPUT_TIMEOUT')), false, 'the client\'s slowness is not the upstream\'s')
  t.equal(isUpstreamFailure(new GatewayError('MCPGW_SESSION_STORE_UNAVAILABLE')), false, 'Redis down is ours (503)')
})
