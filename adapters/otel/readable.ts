import { SpanKind, SpanStatusCode, TraceFlags, type HrTime, type SpanContext } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { TraceSpan, TraceSpans } from '../trace/spans.js';

/** What the resource says of the program that ran: OTel's `service.*` semantic conventions. */
export interface ServiceInfo {
  version: string;
}

/** The instrumentation scope every span names: the code that made them. */
const SCOPE = { name: 'warmvm.trace' };

/**
 * The SDK's ReadableSpan for each span of a trace, as a SpanExporter and the OTLP serializers take
 * them. Built after the run from trace.jsonl rather than through a live tracer: the times, parents
 * and ids are already known (a tracer would make its own ids and need every parent as a context),
 * and the file export and the send at the end of `start` then share one conversion.
 */
export function readableSpans(trace: TraceSpans, service: ServiceInfo): ReadableSpan[] {
  const resource = resourceFromAttributes({ 'service.name': 'warmvm', 'service.version': service.version });
  const context = (spanId: string): SpanContext => ({ traceId: trace.traceId, spanId, traceFlags: TraceFlags.SAMPLED });
  return trace.spans.map((span: TraceSpan): ReadableSpan => {
    const ownContext = context(span.spanId);
    return {
      name: span.name,
      kind: SpanKind.INTERNAL,
      spanContext: () => ownContext,
      ...(span.parentSpanId === undefined ? {} : { parentSpanContext: context(span.parentSpanId) }),
      startTime: hrTime(span.startMs),
      endTime: hrTime(span.endMs),
      duration: hrTime(span.endMs - span.startMs),
      status: span.status.code === 'error' ? { code: SpanStatusCode.ERROR, message: span.status.message } : { code: SpanStatusCode.UNSET },
      attributes: span.attributes,
      links: [],
      events: span.events.map((event) => ({ name: event.name, time: hrTime(event.timeMs), attributes: event.attributes })),
      ended: true,
      resource,
      instrumentationScope: SCOPE,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
  });
}

/** Milliseconds as OTel's [seconds, nanoseconds]. */
function hrTime(ms: number): HrTime {
  const whole = Math.floor(ms / 1000);
  return [whole, Math.round((ms - whole * 1000) * 1_000_000)];
}
