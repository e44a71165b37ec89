import { readFile } from 'node:fs/promises';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { placeExchangeLines } from '../trace/exchanges.js';
import { readTraceFile } from '../trace/file.js';
import { traceSpans, type TraceSpans } from '../trace/spans.js';
import { readableSpans, type ServiceInfo } from './readable.js';

export interface TraceSpansSource {
  /** The instance the trace is of: its missing file's hint names the command, its root span names it. */
  instance?: string | undefined;
  service: ServiceInfo;
}

/** A trace.jsonl as the SDK's spans (and the tree they came from); readTraceFile's errors for a missing or damaged file. */
export async function readTraceSpans(path: string, source: TraceSpansSource): Promise<{ tree: TraceSpans; spans: ReadableSpan[] }> {
  const entries = await readTraceFile(path, source.instance === undefined ? {} : { instance: source.instance });
  // Read again for the exchange lines, which readTraceFile skips: the file is small and complete by now.
  const exchanges = placeExchangeLines(await readFile(path, 'utf8'));
  const tree = traceSpans(entries, exchanges, { instance: source.instance });
  return { tree, spans: readableSpans(tree, source.service) };
}
