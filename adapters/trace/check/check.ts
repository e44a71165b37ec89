import { describeEvent, formatOffset } from '../event.js';
import type { TraceRecord } from '../record.js';
import { ANY, describeItem, isGlob, matchesState, type ExpectedItem, type ExpectedTrace } from './expected.js';
import type { AlignedItem, CheckedEntry, TraceCheckResult, TraceProblem } from './result.js';

/** Checks a run's entries against an expected trace. Pure: the same check `warmvm trace check` runs. */
export function checkTrace(expected: ExpectedTrace, entries: readonly TraceRecord[], options: { actualSource?: string } = {}): TraceCheckResult {
  const checked = checkedEntries(entries.filter((entry) => typeof entry.state === 'string'));
  const problems: TraceProblem[] = [];
  const hasBounds = expected.states.some((item) => item.maxMs !== undefined);
  // Bounds first as part of the match, so a glob can take the split that keeps within them; when no
  // match keeps within them, match without them and report the bounds the loose match breaks.
  let search = matchSequence(expected.states, checked, true);
  if (!search.matched && hasBounds) {
    search = matchSequence(expected.states, checked, false);
    if (search.matched) problems.push(...boundProblems(expected.states, checked, search.alignment));
  }
  if (!search.matched) problems.push(sequenceProblem(expected.states, checked, search.divergence));
  problems.push(...absentProblems(expected.absent, checked));
  const totalMs = checked.at(-1)?.at ?? 0;
  if (expected.maxTotalMs !== undefined && totalMs > expected.maxTotalMs) {
    problems.push({
      kind: 'maxTotalMs',
      message: `maxTotalMs is ${expected.maxTotalMs}, but the run's last entry is at ${formatOffset(totalMs)} (${totalMs} ms)`,
      maxTotalMs: expected.maxTotalMs,
      totalMs,
    });
  }
  return {
    ok: problems.length === 0,
    problems,
    expected,
    actualSource: options.actualSource ?? 'the trace',
    entries: checked,
    alignment: search.alignment,
    divergence: search.matched ? undefined : search.divergence,
  };
}

function checkedEntries(entries: readonly TraceRecord[]): CheckedEntry[] {
  const spent = timeInStates(entries);
  return entries.map((entry, index) => {
    const event = entry.event ?? {};
    const error = event.error as { code?: unknown; message?: unknown } | undefined;
    return {
      index,
      state: entry.state,
      at: entry.at,
      ms: spent[index] ?? 0,
      event: {
        type: typeof event.type === 'string' ? event.type : '(no type)',
        ...(error && typeof error === 'object' ? { error: { code: optionalString(error.code), message: optionalString(error.message) } } : {}),
      },
      summary: describeEvent(event),
    };
  });
}

/**
 * How long each entry's state lasted: the `ms` of its machine's next entry, when that entry says it
 * left this state. A next entry without `from` is a new run of the machine: the state was never left.
 */
export function timeInStates(entries: readonly TraceRecord[]): number[] {
  const spent = entries.map(() => 0);
  const current = new Map<string, number>();
  entries.forEach((entry, index) => {
    const previous = current.get(entry.machine);
    if (previous !== undefined && entry.from === entries[previous]?.state && typeof entry.ms === 'number') spent[previous] = entry.ms;
    current.set(entry.machine, index);
  });
  return spent;
}

interface SequenceSearch {
  matched: boolean;
  alignment: AlignedItem[];
  divergence: { item: number; entry: number };
}

/**
 * Every way of matching the items against the entries, as a search over (item, entry) pairs
 * visited once each (the memo). Moves only go forward, so visiting pairs in order item-major,
 * entry-minor sees every pair after all its predecessors; each pair keeps the first one that
 * reached it, which gives back one path for the report.
 */
function matchSequence(items: readonly ExpectedItem[], entries: readonly CheckedEntry[], withBounds: boolean): SequenceSearch {
  const n = items.length;
  const m = entries.length;
  const width = m + 1;
  const key = (item: number, entry: number): number => item * width + entry;
  const reached = new Uint8Array((n + 1) * width);
  const failed = new Uint8Array((n + 1) * width);
  const parent = new Int32Array((n + 1) * width).fill(-1);
  let furthest = { item: 0, entry: 0 };
  const reach = (from: number, item: number, entry: number): void => {
    const target = key(item, entry);
    if (reached[target]) return;
    reached[target] = 1;
    parent[target] = from;
  };
  const fail = (item: number, entry: number): void => {
    failed[key(item, entry)] = 1;
    if (entry > furthest.entry || (entry === furthest.entry && item > furthest.item)) furthest = { item, entry };
  };
  reached[0] = 1;
  for (let i = 0; i <= n; i += 1) {
    for (let j = 0; j <= m; j += 1) {
      const here = key(i, j);
      if (!reached[here]) continue;
      const item = items[i];
      if (item === undefined) {
        if (j < m) fail(i, j);
        continue;
      }
      if (item.state === ANY) {
        reach(here, i + 1, j);
        if (j < m) reach(here, i, j + 1);
        continue;
      }
      if (item.optional) reach(here, i + 1, j);
      const bound = withBounds ? item.maxMs : undefined;
      if (isGlob(item.state)) {
        let spent = 0;
        let end = j;
        while (end < m && matchesState(item.state, (entries[end] as CheckedEntry).state)) {
          spent += (entries[end] as CheckedEntry).ms;
          if (bound !== undefined && spent > bound) break;
          end += 1;
          reach(here, i + 1, end);
        }
        if (end === j) fail(i, j);
      } else {
        const entry = entries[j];
        if (entry !== undefined && entry.state === item.state && (bound === undefined || entry.ms <= bound)) reach(here, i + 1, j + 1);
        else fail(i, j);
      }
    }
  }
  if (reached[key(n, m)]) return { matched: true, alignment: alignmentTo(parent, width, key(n, m)), divergence: { item: n, entry: m } };
  // "Expected X, but the trace ended" says less than "expected X, but found Y" about the same item.
  if (furthest.entry === m && m > 0 && furthest.item < n && failed[key(furthest.item, m - 1)]) furthest = { item: furthest.item, entry: m - 1 };
  return { matched: false, alignment: alignmentTo(parent, width, key(furthest.item, furthest.entry)), divergence: furthest };
}

/** Walks the first-reached parents back from `end` and says which entries each item took. */
function alignmentTo(parent: Int32Array, width: number, end: number): AlignedItem[] {
  const path: number[] = [];
  for (let at = end; at !== -1; at = parent[at] ?? -1) path.push(at);
  path.reverse();
  const byItem = new Map<number, number[]>();
  for (let step = 0; step + 1 < path.length; step += 1) {
    const from = path[step] as number;
    const to = path[step + 1] as number;
    const item = Math.floor(from / width);
    const taken = byItem.get(item) ?? [];
    for (let entry = from % width; entry < to % width; entry += 1) taken.push(entry);
    byItem.set(item, taken);
  }
  return [...byItem.entries()].sort(([a], [b]) => a - b).map(([item, entries]) => ({ item, entries }));
}

function boundProblems(items: readonly ExpectedItem[], entries: readonly CheckedEntry[], alignment: readonly AlignedItem[]): TraceProblem[] {
  const problems: TraceProblem[] = [];
  for (const { item: index, entries: taken } of alignment) {
    const item = items[index] as ExpectedItem;
    if (item.maxMs === undefined || taken.length === 0) continue;
    const ms = taken.reduce((sum, entry) => sum + (entries[entry] as CheckedEntry).ms, 0);
    if (ms <= item.maxMs) continue;
    const where = taken.map((entry) => `#${entry} ${(entries[entry] as CheckedEntry).state}`).join(', ');
    problems.push({
      kind: 'maxMs',
      message: `expected item ${index} ${describeItem(item)} allows ${item.maxMs} ms, but the trace spent ${ms} ms in ${where}`,
      item: { index, pattern: item.state },
      maxMs: item.maxMs,
      ms,
      entries: taken,
    });
  }
  return problems;
}

function sequenceProblem(items: readonly ExpectedItem[], entries: readonly CheckedEntry[], divergence: { item: number; entry: number }): TraceProblem {
  const item = items[divergence.item];
  const entry = entries[divergence.entry];
  let message: string;
  if (item === undefined) {
    message = `the expected list ends after item ${items.length - 1} ${describeItem(items[items.length - 1] as ExpectedItem)}, but the trace goes on with ${describeEntry(entry as CheckedEntry)}`;
  } else if (entry === undefined) {
    const last = entries.at(-1);
    message = `expected item ${divergence.item} ${describeItem(item)}, but the trace ${last ? `ends after ${describeEntry(last)}` : 'has no entries'}`;
  } else {
    message = `expected item ${divergence.item} ${describeItem(item)}, but the trace has ${describeEntry(entry)}`;
  }
  return {
    kind: 'sequence',
    message,
    item: item === undefined ? undefined : { index: divergence.item, pattern: item.state },
    entry,
    remainingExpected: items.slice(divergence.item).map((rest) => rest.state),
    remainingActual: entries.slice(divergence.entry).map((rest) => rest.state),
  };
}

function absentProblems(patterns: readonly string[], entries: readonly CheckedEntry[]): TraceProblem[] {
  const problems: TraceProblem[] = [];
  for (const pattern of patterns) {
    const found = entries.filter((entry) => matchesState(pattern, entry.state));
    if (found.length === 0) continue;
    const listed = found.slice(0, 3).map((entry) => `#${entry.index} ${entry.state} (${formatOffset(entry.at)})`);
    const more = found.length > 3 ? ` and ${found.length - 3} more` : '';
    problems.push({ kind: 'absent', message: `"${pattern}" must be absent, but the trace has ${listed.join(', ')}${more}`, pattern, entries: found });
  }
  return problems;
}

/** `entry #8 "start.settingAside" (at +0.057s, on done resume: failed in resume.preparing: E_… …)`. */
export function describeEntry(entry: CheckedEntry): string {
  return `entry #${entry.index} "${entry.state}" (at ${formatOffset(entry.at)}, on ${entry.summary})`;
}

function optionalString(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}
