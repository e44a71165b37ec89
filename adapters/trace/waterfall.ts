import { describeEvent } from './event.js';
import type { TraceRecord } from './record.js';
import { machineDepths } from './timeline.js';

/** How a state was left, as the waterfall marks it. */
export type LeftHow = 'done' | 'error' | 'bound' | 'cancel' | 'child-failed' | 'never';

/** One state entered, placed on the run's time axis. */
export interface WaterfallRow {
  /** Full state path: `resume.incoming`. */
  state: string;
  machine: string;
  /** 0 for the root machine, 1 for a machine it invoked, and so on. */
  depth: number;
  /** The row of the state whose machine invoked this one (`start.resume` for `resume.*`); undefined at depth 0. */
  parent: number | undefined;
  /** 1 for the first time the run entered this state path, 2 for the second (a fallback's second resume). */
  occurrence: number;
  /** Milliseconds since the run began. */
  startMs: number;
  endMs: number;
  ms: number;
  /** Its time not spent in a child machine's states: the rows' `selfMs` add up to the run's time. */
  selfMs: number;
  /** The event that left it; `never` when its machine never left it (a final state, or the trace ends there). */
  left: LeftHow;
  /** That event in words (`error resume.preparing: E_SNAPSHOT_CORRUPT …`), absent when never left. */
  leftBy?: string;
  /** Whether it was left by a failure: its actor's error, its bound passing, Ctrl-C, or its child machine failing. */
  failed: boolean;
  /**
   * The bound, when the trace shows it: only a bound that passed is recorded (as the `xstate.after.<delay>`
   * event that left the state), so `atMs` is where it fired; a numeric delay also gives its length.
   */
  bound?: { delay: string; atMs: number; ms?: number };
  warning?: string;
}

/**
 * A trace's entries as waterfall rows, in file order (a child machine's states right under the state
 * that invoked it). A state ends when its machine leaves it; one never left ends when its machine
 * stopped (its parent left the invoking state) or, at the root, where the trace ends.
 */
export function waterfallRows(entries: readonly TraceRecord[]): WaterfallRow[] {
  const depths = machineDepths(entries);
  const traceEnd = entries.reduce((end, entry) => Math.max(end, entry.at), 0);
  const seen = new Map<string, number>();
  // The open row of each machine on the stack, by depth: a machine's next entry closes it.
  const openAt: (number | undefined)[] = [];
  const rows: WaterfallRow[] = [];
  const closers: (TraceRecord | undefined)[] = [];
  for (const [index, entry] of entries.entries()) {
    const depth = depths[index] ?? 0;
    const previous = openAt[depth];
    if (previous !== undefined && rows[previous]?.machine === entry.machine && entry.from !== undefined) closers[previous] = entry;
    const occurrence = (seen.get(entry.state) ?? 0) + 1;
    seen.set(entry.state, occurrence);
    rows.push({
      state: entry.state,
      machine: entry.machine,
      depth,
      parent: depth > 0 ? openAt[depth - 1] : undefined,
      occurrence,
      startMs: entry.at,
      endMs: entry.at,
      ms: 0,
      selfMs: 0,
      left: 'never',
      failed: false,
      ...(entry.warning ? { warning: entry.warning } : {}),
    });
    closers.push(undefined);
    openAt[depth] = rows.length - 1;
    // Entering a state of this machine (or of one below) ends the machines above it.
    openAt.length = depth + 1;
  }
  for (const [index, row] of rows.entries()) {
    const closer = closers[index];
    if (closer) {
      row.endMs = closer.at;
      Object.assign(row, leftBy(closer));
    } else {
      row.endMs = Math.max(row.startMs, row.parent === undefined ? traceEnd : endOfParent(rows, closers, row.parent, traceEnd));
    }
    row.ms = row.endMs - row.startMs;
  }
  for (const row of rows) row.selfMs = row.ms;
  for (const row of rows) if (row.parent !== undefined) (rows[row.parent] as WaterfallRow).selfMs -= row.ms;
  for (const row of rows) row.selfMs = Math.max(0, row.selfMs);
  return rows;
}

/** The end of the invoking state: a child still in a state then was stopped with it. */
function endOfParent(rows: WaterfallRow[], closers: (TraceRecord | undefined)[], parent: number, traceEnd: number): number {
  const closer = closers[parent];
  if (closer) return closer.at;
  const grand = rows[parent]?.parent;
  return grand === undefined ? traceEnd : endOfParent(rows, closers, grand, traceEnd);
}

function leftBy(closer: TraceRecord): Pick<WaterfallRow, 'left' | 'leftBy' | 'failed' | 'bound'> {
  const type = typeof closer.event.type === 'string' ? closer.event.type : '';
  const words = describeEvent(closer.event);
  if (type.startsWith('xstate.error.actor.')) return { left: 'error', leftBy: words, failed: true };
  if (type === 'CANCEL') return { left: 'cancel', leftBy: words, failed: true };
  if (type.startsWith('xstate.after.')) {
    // `xstate.after.<delay>.<state id>`: the delay is a name (`healthBound`) or milliseconds.
    const delay = type.slice('xstate.after.'.length).split('.')[0] ?? '';
    const ms = /^\d+$/.test(delay) ? Number(delay) : undefined;
    return { left: 'bound', leftBy: words, failed: true, bound: { delay, atMs: closer.at, ...(ms !== undefined ? { ms } : {}) } };
  }
  const output = closer.event.output as { outcome?: unknown } | undefined;
  if (type.startsWith('xstate.done.actor.') && output?.outcome === 'failed') return { left: 'child-failed', leftBy: words, failed: true };
  return { left: 'done', leftBy: words, failed: false };
}
