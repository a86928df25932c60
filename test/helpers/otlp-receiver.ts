import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './fixtures.js'

/* An OTLP/HTTP (JSON) traces receiver on port 0: what the gateway exports, span by span. */

export interface ReceivedSpan { traceId: string, spanId: string, parentSpanId: string, name: string, attributes: Record<string, unknown> }

interface OtlpTraces { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ traceId: string, spanId: string, parentSpanId?: string, name: string, attributes: Array<{ key: string, value: Record<string, unknown> }> }> }> }> }

export async function withOtlpReceiver (t: Teardown): Promise<{ url: string, spans: ReceivedSpan[] }> {
  const spans: ReceivedSpan[] = []
  const server = createServer((incoming, response) => {
    const chunks: Buffer[] = []
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk))
    incoming.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpTraces
      for (const resource of body.resourceSpans) {
        for (const scope of resource.scopeSpans) {
          for (const span of scope.spans) {
            spans.push({ traceId: span.traceId, spanId: span.spanId, parentSpanId: span.parentSpanId ?? '', name: span.name, attributes: Object.fromEntries(span.attributes.map((attribute) => [attribute.key, Object.values(attribute.value)[0]])) })
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans }
}
