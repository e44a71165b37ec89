import { expect } from 'vitest';
import type { SpanValue, TraceSpans } from '../../adapters/trace/spans.js';

/** An OTLP key-value as the JSON mapping (or protobufjs' toObject) gives it. */
export interface OtlpKeyValue {
  key: string;
  value: { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean };
}

/** An OTLP span in the protobuf-JSON shape, ids already hex. */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: OtlpKeyValue[];
  events?: { name: string; timeUnixNano: string | number; attributes?: OtlpKeyValue[] }[];
  status?: { code?: number; message?: string };
}

const STATUS_ERROR = 2;

/** Key-values as a plain record; an int64 (a number in JSON, a string from protobufjs) as a number. */
export function attributeRecord(values: readonly OtlpKeyValue[] | undefined): Record<string, SpanValue> {
  const out: Record<string, SpanValue> = {};
  for (const { key, value } of values ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
  }
  return out;
}

const nanos = (ms: number): string => (BigInt(Math.round(ms)) * 1_000_000n).toString();

/** The OTLP spans are exactly the trace's spans: ids, parents, names, times, attributes, events, status. */
export function expectOtlpSpansMatch(spans: readonly OtlpSpan[], expected: TraceSpans): void {
  expect(spans.map((span) => span.spanId).sort()).toEqual(expected.spans.map((span) => span.spanId).sort());
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  for (const want of expected.spans) {
    const got = byId.get(want.spanId) as OtlpSpan;
    const label = `${want.name} (${want.spanId})`;
    expect(got.traceId, label).toBe(expected.traceId);
    expect(got.parentSpanId || undefined, label).toBe(want.parentSpanId);
    expect(got.name, label).toBe(want.name);
    expect([String(got.startTimeUnixNano), String(got.endTimeUnixNano)], label).toEqual([nanos(want.startMs), nanos(want.endMs)]);
    expect(attributeRecord(got.attributes), label).toEqual(want.attributes);
    expect(
      (got.events ?? []).map((event) => ({ name: event.name, time: String(event.timeUnixNano), attributes: attributeRecord(event.attributes) })),
      label,
    ).toEqual(want.events.map((event) => ({ name: event.name, time: nanos(event.timeMs), attributes: event.attributes })));
    if (want.status.code === 'error') expect(got.status, label).toEqual({ code: STATUS_ERROR, message: want.status.message });
    else expect(got.status?.code ?? 0, label).toBe(0);
  }
}
