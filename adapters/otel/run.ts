import { readTraceSpans } from './from-trace.js';
import type { ServiceInfo } from './readable.js';
import { sendSpans } from './send.js';

/**
 * What `start` calls once its run is over, when an OTLP endpoint is set: the run's trace.jsonl
 * read back and sent as spans. Never throws: resolves with a warning to print, or undefined.
 */
export async function sendRunTrace(traceFile: string, instance: string, service: ServiceInfo): Promise<string | undefined> {
  let problem: string | undefined;
  try {
    const { spans } = await readTraceSpans(traceFile, { instance, service });
    problem = await sendSpans(spans);
  } catch (error) {
    problem = error instanceof Error ? error.message : String(error);
  }
  return problem === undefined ? undefined : `the run's spans were not sent to the OTLP endpoint: ${problem}`;
}
