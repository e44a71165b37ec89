import { formatOffset } from '../event.js';
import type { ExpectedItem } from './expected.js';
import type { CheckedEntry, TraceCheckResult } from './result.js';

interface Row {
  mark: string;
  expected: string;
  actual: string;
  note: string;
}

const MAX_EXPECTED_WIDTH = 44;

/**
 * The check's result for a terminal or a CI log: one line when it passed; else the expected
 * items beside the entries they took, a `>` where the match stopped, and each problem in words.
 */
export function formatTraceCheck(result: TraceCheckResult): string {
  const { expected, entries } = result;
  const against = `${expected.source}${expected.description ? ` ("${expected.description}")` : ''}`;
  if (result.ok) {
    const total = entries.at(-1)?.at ?? 0;
    return `trace check OK: ${result.actualSource} matches ${against}: ${entries.length} states in ${(total / 1000).toFixed(3)}s`;
  }
  const rows = tableRows(result);
  const width = Math.min(MAX_EXPECTED_WIDTH, Math.max('expected'.length, ...rows.map((row) => row.expected.length)));
  const actualWidth = Math.max('actual'.length, ...rows.map((row) => row.actual.length));
  const line = (row: Row): string => `  ${row.mark} ${row.expected.padEnd(width)}  ${row.note ? `${row.actual.padEnd(actualWidth)}  ${row.note}` : row.actual}`.trimEnd();
  const out = [
    `trace check FAILED: ${result.actualSource} does not match ${against}`,
    '',
    line({ mark: ' ', expected: 'expected', actual: 'actual', note: '' }),
    ...rows.map(line),
  ];
  if (result.divergence) {
    out.push('', '  ">" marks where the best match stopped; the rows after it are the rest of each list, unmatched.');
  }
  out.push('', `${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}:`, ...result.problems.map((problem) => `  - ${problem.message}`));
  return out.join('\n');
}

function tableRows(result: TraceCheckResult): Row[] {
  const { expected, entries, alignment, divergence } = result;
  const itemNotes = new Map<number, string>();
  const entryNotes = new Map<number, string>();
  for (const problem of result.problems) {
    if (problem.kind === 'maxMs') itemNotes.set(problem.item.index, `<- ${problem.ms} ms, over maxMs ${problem.maxMs}`);
    if (problem.kind === 'absent') for (const entry of problem.entries) entryNotes.set(entry.index, `<- must be absent: "${problem.pattern}"`);
  }
  const rows: Row[] = [];
  const row = (item: number | undefined, entry: number | undefined): void => {
    const note = (item !== undefined ? itemNotes.get(item) : undefined) ?? (entry !== undefined ? entryNotes.get(entry) : undefined) ?? '';
    rows.push({
      mark: note ? '!' : ' ',
      expected: item === undefined ? '' : itemLabel(item, expected.states[item]),
      actual: entry === undefined ? '' : entryLabel(entries[entry]),
      note,
    });
  };
  for (const { item, entries: taken } of alignment) {
    if (taken.length === 0) row(item, undefined);
    taken.forEach((entry, position) => {
      row(position === 0 ? item : undefined, entry);
    });
  }
  if (divergence) {
    const remainingItems = expected.states.length - divergence.item;
    const remainingEntries = entries.length - divergence.entry;
    rows.push({
      mark: '>',
      expected: remainingItems > 0 ? itemLabel(divergence.item, expected.states[divergence.item]) : '(end of expected list)',
      actual: remainingEntries > 0 ? entryLabel(entries[divergence.entry]) : '(end of trace)',
      note: '<- diverges here',
    });
    for (let k = 1; k < Math.max(remainingItems, remainingEntries); k += 1) {
      row(k < remainingItems ? divergence.item + k : undefined, k < remainingEntries ? divergence.entry + k : undefined);
    }
  }
  return rows;
}

function itemLabel(index: number, item: ExpectedItem | undefined): string {
  if (!item) return '';
  const notes = [item.maxMs === undefined ? undefined : `maxMs ${item.maxMs}`, item.optional ? 'optional' : undefined].filter(Boolean);
  const label = `${String(index).padStart(2)}  ${item.state}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
  return label.length > MAX_EXPECTED_WIDTH ? `${label.slice(0, MAX_EXPECTED_WIDTH - 1)}…` : label;
}

function entryLabel(entry: CheckedEntry | undefined): string {
  if (!entry) return '';
  return `${`#${entry.index}`.padEnd(4)} ${formatOffset(entry.at).padStart(8)}  ${entry.state}`;
}
