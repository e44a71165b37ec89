import { describeEvent, formatOffset } from './event.js';
import type { TraceRecord } from './record.js';

const INDENT = 2;
const MAX_STATE_WIDTH = 40;

/**
 * Each entry's nesting depth: 0 for the root machine, 1 for a machine it invoked, and so on. A
 * machine seen for the first time is a child of the machine of the entry before it (a child's
 * first entry follows its parent's entry into the invoking state); an entry of a machine already
 * on the stack closes the children above it.
 */
export function machineDepths(entries: readonly TraceRecord[]): number[] {
  const stack: string[] = [];
  return entries.map((entry) => {
    const found = stack.lastIndexOf(entry.machine);
    if (found >= 0) stack.length = found + 1;
    else stack.push(entry.machine);
    return stack.length - 1;
  });
}

/** A header, one line per entry (offset, state indented by depth, the state left and its time, event), a total. */
export function formatTimeline(entries: readonly TraceRecord[]): string {
  if (entries.length === 0) return '(the trace has no entries)';
  const depths = machineDepths(entries);
  const states = entries.map((entry, index) => `${' '.repeat((depths[index] ?? 0) * INDENT)}${entry.state}`);
  const lefts = entries.map(leftText);
  const stateWidth = Math.min(MAX_STATE_WIDTH, Math.max('state entered'.length, ...states.map((state) => state.length)));
  const leftWidth = Math.max('state left'.length, ...lefts.map((left) => left.length));
  const header = `${'at'.padStart(9)}  ${'state entered'.padEnd(stateWidth)}  ${'state left'.padEnd(leftWidth)}  event`;
  const lines = entries.map((entry, index) => {
    const warning = entry.warning ? `  WARNING: ${entry.warning}` : '';
    return `${formatOffset(entry.at).padStart(9)}  ${(states[index] ?? '').padEnd(stateWidth)}  ${(lefts[index] ?? '').padEnd(leftWidth)}  ${describeEvent(entry.event ?? {})}${warning}`;
  });
  const last = entries.at(-1) as TraceRecord;
  const lastRoot = entries.filter((_, index) => depths[index] === 0).at(-1) ?? last;
  lines.push(`${(last.at / 1000).toFixed(3)}s in all, ${entries.length} states, ended in ${lastRoot.state}`);
  return [header, ...lines].join('\n');
}

/** `preparing 2 ms`: the state its machine left, without the machine id, and how long it lasted. */
function leftText(entry: TraceRecord): string {
  if (entry.from === undefined) return '';
  const prefix = `${entry.machine}.`;
  const from = entry.from.startsWith(prefix) ? entry.from.slice(prefix.length) : entry.from;
  return `${from} ${entry.ms ?? '?'} ms`;
}
