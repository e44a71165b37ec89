import { dirname } from 'node:path';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { WarmvmError } from '../support/errors.js';
import { writeFileDurably } from '../support/durable.js';

/**
 * Writes spans as an OTLP JSON file: one ExportTraceServiceRequest in the protobuf-JSON mapping
 * (resourceSpans → scopeSpans → spans, ids in hex, times as nanosecond strings), as the
 * collector's `otlpjson` file receiver and the OTLP file exporter read it. The JSON is OTel's own
 * serializer's, the one its OTLP/HTTP JSON exporter sends, not a mapping written here again.
 * Written beside and renamed: a reader never sees half a file.
 */
export async function writeOtlpFile(path: string, spans: ReadableSpan[]): Promise<void> {
  const json = new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans));
  try {
    await writeFileDurably(path, `${json}\n`);
  } catch (cause) {
    throw new WarmvmError('E_OTLP_WRITE', `cannot write the OTLP file ${path}`, {
      hint: `check that the folder ${dirname(path)} exists, has space, and that you can write there`,
      cause,
    });
  }
}
