import { readFile } from 'node:fs/promises';
import type { InspectorMessage } from '../../adapters/inspector/protocol.js';
import { startInspectorServer } from '../../adapters/inspector/server.js';
import { instancePaths } from '../../adapters/instance/paths.js';
import { describeEvent } from '../../adapters/trace/event.js';
import { parseExchangeLines } from '../../adapters/trace/exchanges.js';
import { readTraceFile } from '../../adapters/trace/file.js';
import type { Exchange, TraceRecord } from '../../adapters/trace/record.js';
import { untilInterrupted } from '../inspector/live.js';
import { inspectorModel } from '../inspector/model.js';
import { startBounds } from './start.js';
import { STOP_BOUNDS } from './stop.js';
import { defaultSpec } from '../../adapters/spec/vm.js';
import type { Output } from '../output.js';

/**
 * `warmvm inspect`: the inspector page on a recorded trace (a run that is over, a CI artifact),
 * with a slider to step through it. Serves until Ctrl-C.
 */
export async function inspectCommand(options: { file: string | undefined; name: string; home: string; port: number; output: Output }): Promise<number> {
  const file = options.file ?? instancePaths(options.home, options.name).traceFile;
  const entries = await readTraceFile(file, options.file === undefined ? { instance: options.name } : {});
  const exchanges = parseExchangeLines(await readFile(file, 'utf8'));
  const root = entries[0]?.machine === 'stop' ? 'stop' : 'start';
  // Bounds are not in a trace: the default config's stand in for drawing them.
  const model = root === 'stop' ? inspectorModel({ kind: 'stop', bounds: STOP_BOUNDS }) : inspectorModel({ kind: 'start', bounds: startBounds(defaultSpec()) });
  const server = await startInspectorServer({ port: options.port });
  const startedAt = entries[0]?.t ? Date.parse(entries[0].t) - entries[0].at : Date.now();
  server.publish({ kind: 'hello', model, title: `warmvm inspect ${file}`, live: false, startedAt, now: Date.now() });
  for (const message of interleave(entries, exchanges)) server.publish(message);
  server.publish({ kind: 'end', end: recordedEnd(entries) });
  // On stderr, as `start --inspect` says it: the URL is how a person (or a test) finds the page.
  process.stderr.write(`warmvm: inspector at ${server.url} (${entries.length} states from ${file}); press Ctrl-C to end\n`);
  if (options.output.json) options.output.result({ url: server.url, file, entries: entries.length, exchanges: exchanges.length }, '');
  await untilInterrupted();
  await server.close();
  return 0;
}

/** Entries and exchanges in time order, each exchange before the entry that follows it. */
function interleave(entries: TraceRecord[], exchanges: Exchange[]): InspectorMessage[] {
  const messages: InspectorMessage[] = [];
  let next = 0;
  for (const entry of entries) {
    while (next < exchanges.length && (exchanges[next]?.at ?? 0) <= entry.at) messages.push({ kind: 'exchange', exchange: exchanges[next++] as Exchange });
    messages.push({ kind: 'entry', entry, summary: describeEvent(entry.event) });
  }
  while (next < exchanges.length) messages.push({ kind: 'exchange', exchange: exchanges[next++] as Exchange });
  return messages;
}

function recordedEnd(entries: TraceRecord[]): { outcome: 'healthy' | 'failed' | 'stopped' | 'recorded'; summary: string; fallbackReason?: string } {
  const last = entries.filter((entry) => entry.machine === entries[0]?.machine).at(-1);
  const total = `${((entries.at(-1)?.at ?? 0) / 1000).toFixed(2)} s`;
  if (last?.state === 'start.running') return { outcome: 'healthy', summary: `healthy in ${total}` };
  if (last?.state === 'stop.stopped' || last?.state === 'stop.staleCleaned') return { outcome: 'stopped', summary: `stopped in ${total}` };
  if (last?.state.endsWith('.failed')) return { outcome: 'failed', summary: `failed after ${total}: ${describeEvent(last.event)}` };
  return { outcome: 'recorded', summary: `the trace ends in ${last?.state ?? 'nothing'} after ${total} (the run was cut off, or is still going)` };
}
