import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, BatchSpanProcessor, TraceIdRatioBasedSampler, ParentBasedSampler } from '@opentelemetry/sdk-trace-base'
import type { IncomingHttpHeaders } from 'node:http'
import type { TracingConfig } from '../config/validate-config.js'

/*
 * Optional OpenTelemetry tracing (docs/operating.md): off unless `tracing.otlpEndpoint` is set. One server
 * span per request (route, JSON-RPC method, session outcome, upstream timing), continuing the
 * caller's W3C `traceparent` when there is one, and a `traceparent` for the upstream so that its
 * spans join the same trace. The provider is ours alone (not registered globally).
 */

export interface RequestSpan {
  /** Headers that carry this span's context to the upstream (`traceparent`, `tracestate`). */
  propagationHeaders (): Record<string, string>
  setAttribute (name: string, value: string | number): void
  end (statusCode: number): void
}

export interface Tracing {
  /** false: no span is ever made, and callers register no hooks for it. */
  readonly enabled: boolean
  /** undefined when tracing is off: callers skip all work. */
  startRequestSpan (method: string, route: string, headers: IncomingHttpHeaders): RequestSpan | undefined
  close (): Promise<void>
}

const propagator = new W3CTraceContextPropagator()

const disabled: Tracing = {
  enabled: false,
  startRequestSpan: () => undefined,
  close: async () => {}
}

function requestSpan (span: Span): RequestSpan {
  const context = trace.setSpan(ROOT_CONTEXT, span)
  return {
    propagationHeaders () {
      const carrier: Record<string, string> = {}
      propagator.inject(context, carrier, defaultTextMapSetter)
      return carrier
    },
    setAttribute (name, value) { span.setAttribute(name, value) },
    end (statusCode) {
      span.setAttribute('http.response.status_code', statusCode)
      if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
      span.end()
    }
  }
}

export function createTracing (config: TracingConfig | null): Tracing {
  if (config === null) return disabled
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: config.otlpEndpoint }), { scheduledDelayMillis: 1000 })]
  })
  const tracer: Tracer = provider.getTracer('mcp-session-gateway')
  let closing: Promise<void> | undefined
  return {
    enabled: true,
    startRequestSpan (method, route, headers) {
      const parent = propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter)
      const span = tracer.startSpan(`${method} ${route}`, {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': method, 'http.route': route }
      }, parent)
      return requestSpan(span)
    },
    async close () {
      // Flushes what is buffered, once.
      closing ??= provider.shutdown()
      await closing
    }
  }
}
