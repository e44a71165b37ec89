import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** How long a send may take: a start is over, the person waits only this long for its spans. */
export const SEND_BOUND_MS = 2000;

/**
 * Sends spans over OTLP/HTTP with protobuf bodies, where the OTel environment says
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is;
 * `OTEL_EXPORTER_OTLP_HEADERS`, …: the exporter reads them itself, as the spec says). Never throws:
 * resolves with why the spans did not get there, or undefined once the receiver took them. The
 * exporter's own timeout is `boundMs`; a timer of the same length stops the wait should it hang.
 */
export async function sendSpans(spans: ReadableSpan[], boundMs = SEND_BOUND_MS): Promise<string | undefined> {
  let exporter: OTLPTraceExporter | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    exporter = new OTLPTraceExporter({ timeoutMillis: boundMs });
    const sent = new Promise<string | undefined>((resolve) => {
      (exporter as OTLPTraceExporter).export(spans, (result) => {
        resolve(result.code === ExportResultCode.SUCCESS ? undefined : (result.error?.message ?? 'the receiver did not take them'));
      });
    });
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`no answer within ${boundMs / 1000} s`), boundMs + 250);
    });
    return await Promise.race([sent, late]);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    clearTimeout(timer);
    // Its sockets and timers must not keep the start waiting past its bound: shutdown waits for a
    // send still pending, so it gets a moment, no more.
    if (exporter !== undefined) await Promise.race([exporter.shutdown().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 100).unref())]);
  }
}
