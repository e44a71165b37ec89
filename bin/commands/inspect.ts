import { readFile } from 'node:fs/promises';
import type { InspectorMessage, InspectorModel } from '../../adapters/inspector/protocol.js';
import { COMPARE_PAGE } from '../../adapters/inspector/compare-page.js';
import { startInspectorServer } from '../../adapters/inspector/server.js';
import { instancePaths } from '../../adapters/instance/paths.js';
import { describeEvent } from '../../adapters/trace/event.js';
import { parseExchangeLines } from '../../adapters/trace/exchanges.js';
import { readTraceFile } from '../../adapters/trace/file.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import type { Exchange, TraceRecord } from '../../adapters/trace/record.js';
import { untilInterrupted } from '../inspector/live.js';
import { compareMessage } from '../inspector/compare.js';
import { inspectorModel } from '../inspector/model.js';
import { recordedEnd } from '../inspector/recorded-end.js';
import { startBounds } from './start.js';
import { STOP_BOUNDS } from './stop.js';
import { defaultSpec } from '../../adapters/spec/vm.js';
import type { Output } from '../output.js';

/**
 * `warmvm inspect`: the inspector page on a recorded trace (a run that is over, a CI artifact),
 * with a slider to step through it; given two traces, the two runs compared side by side. Serves
 * until Ctrl-C.
 */
export async function inspectCommand(options: { file: string | undefined; other?: string | undefined; name: string; home: string; port: number; output: Output }): Promise<number> {
  if (options.file !== undefined && options.other !== undefined) return compareCommand({ ...options, file: options.file, other: options.other });
  const file = options.file ?? instancePaths(options.home, options.name).traceFile;
  const entries = await readTraceFile(file, options.file === undefined ? { instance: options.name } : {});
  const exchanges = parseExchangeLines(await readFile(file, 'utf8'));
  const server = await startInspectorServer({ port: options.port });
  const startedAt = entries[0]?.t ? Date.parse(entries[0].t) - entries[0].at : Date.now();
  server.publish({ kind: 'hello', model: modelFor(rootOf(entries)), title: `warmvm inspect ${file}`, live: false, startedAt, now: Date.now() });
  for (const message of interleave(entries, exchanges)) server.publish(message);
  server.publish({ kind: 'end', end: recordedEnd(entries) });
  // On stderr, as `start --inspect` says it: the URL is how a person (or a test) finds the page.
  process.stderr.write(`warmvm: inspector at ${server.url} (${entries.length} states from ${file}); press Ctrl-C to end\n`);
  if (options.output.json) options.output.result({ url: server.url, file, entries: entries.length, exchanges: exchanges.length }, '');
  await untilInterrupted();
  await server.close();
  return 0;
}

/** `warmvm inspect A B`: the comparison page, the diff of `trace diff A B` drawn on the machines and on one time axis. */
async function compareCommand(options: { file: string; other: string; port: number; output: Output }): Promise<number> {
  const a = { file: options.file, entries: await readTraceFile(options.file) };
  const b = { file: options.other, entries: await readTraceFile(options.other) };
  const root = rootOf(a.entries);
  if (rootOf(b.entries) !== root) {
    throw new WarmvmError('E_USAGE', `${options.file} is a ${root}'s trace and ${options.other} a ${rootOf(b.entries)}'s: only runs of one command compare`, {
      hint: 'give two traces of `warmvm start`, or two of `warmvm stop`',
    });
  }
  const message = compareMessage(modelFor(root), a, b);
  const server = await startInspectorServer({ port: options.port, page: COMPARE_PAGE });
  server.publish(message);
  process.stderr.write(`warmvm: inspector at ${server.url} (A ${options.file} against B ${options.other}); press Ctrl-C to end\n`);
  if (options.output.json) options.output.result({ url: server.url, a: options.file, b: options.other, summary: message.summary }, '');
  await untilInterrupted();
  await server.close();
  return 0;
}

function rootOf(entries: readonly TraceRecord[]): 'start' | 'stop' {
  return entries[0]?.machine === 'stop' ? 'stop' : 'start';
}

/** Bounds are not in a trace: the default config's stand in for drawing them. */
function modelFor(root: 'start' | 'stop'): InspectorModel {
  return root === 'stop' ? inspectorModel({ kind: 'stop', bounds: STOP_BOUNDS }) : inspectorModel({ kind: 'start', bounds: startBounds(defaultSpec()) });
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
