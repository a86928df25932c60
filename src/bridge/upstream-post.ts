import { GatewayError } from '../errors.js'
import type { ModernRequest } from './modern-upstream-bridge.js'

/**
 * POSTs one bridged request to the modern upstream. `timeout` bounds the wait for the response
 * headers only: the body may be a stream that lasts (a listen stream, a long tool call) and ends
 * when `signal` aborts or the upstream closes it.
 */
export async function postUpstream (upstream: string, headers: Record<string, string>, request: ModernRequest, signal: AbortSignal, timeout: number): Promise<Response> {
  const headersDeadline = new AbortController()
  const timer = setTimeout(() => { headersDeadline.abort(new GatewayError('MCPGW_UPSTREAM_TIMEOUT')) }, timeout)
  try {
    return await fetch(upstream, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...request.headers },
      body: request.body,
      signal: AbortSignal.any([signal, headersDeadline.signal])
    })
  } catch (error) {
    if (headersDeadline.signal.aborted) throw headersDeadline.signal.reason
    throw error
  } finally {
    clearTimeout(timer)
  }
}
