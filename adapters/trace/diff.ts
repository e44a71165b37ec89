import { runPath, type PathStep } from './run-path.js';
import type { TraceRecord } from './record.js';
import { waterfallRows, type WaterfallRow } from './waterfall.js';

/** How many phases the summary names on each side. */
const SUMMARY_PHASES = 5;

/** One state of A's run beside the same state of B's, matched by path and by how many times each run had entered it. */
export interface DiffRow {
  state: string;
  /** 1 for the first entry into this state path, 2 for the second (a fallback's second resume), … */
  occurrence: number;
  depth: number;
  /** The time spent in it in each run; absent in the run that never entered it. */
  aMs?: number;
  bMs?: number;
  /** Where it began in each run, in ms since that run began. */
  aStartMs?: number;
  bStartMs?: number;
  /** B's time less A's, a missing state counting 0. */
  diffMs: number;
  /** B's time over A's, when both ran it and A's took any time. */
  ratio?: number;
  /** Set when only one run entered it. */
  only?: 'a' | 'b';
  /** Whether a failure left it, in each run that entered it. */
  aFailed?: boolean;
  bFailed?: boolean;
}

/** A phase of the summary: a state's own time (not its child machine's) in each run. */
export interface DiffPhase {
  state: string;
  occurrence: number;
  aMs?: number;
  bMs?: number;
  diffMs: number;
  only?: 'a' | 'b';
}

export interface RunSide {
  /** The run's time: where its trace ends. */
  totalMs: number;
  states: number;
  path: PathStep[];
}

export interface TraceDiff {
  a: RunSide;
  b: RunSide;
  rows: DiffRow[];
  summary: {
    diffMs: number;
    ratio?: number;
    /** The phases where B spent more time than A, the biggest difference first; then those where it spent less. */
    slower: DiffPhase[];
    faster: DiffPhase[];
  };
}

/**
 * Two runs state by state. Rows are aligned by `state#occurrence` along the longest common order of
 * the two runs, so the states only one run entered (a fallback's cold boot) sit where they happened.
 */
export function diffTraces(a: readonly TraceRecord[], b: readonly TraceRecord[]): TraceDiff {
  const rowsA = waterfallRows(a);
  const rowsB = waterfallRows(b);
  const pairs = align(rowsA.map(key), rowsB.map(key));
  const rows: DiffRow[] = [];
  const phases: DiffPhase[] = [];
  for (const [indexA, indexB] of pairs) {
    const rowA = indexA === undefined ? undefined : rowsA[indexA];
    const rowB = indexB === undefined ? undefined : rowsB[indexB];
    const some = (rowA ?? rowB) as WaterfallRow;
    const only: 'a' | 'b' | undefined = rowA === undefined ? 'b' : rowB === undefined ? 'a' : undefined;
    const both = { state: some.state, occurrence: some.occurrence, ...(only ? { only } : {}) };
    rows.push({
      ...both,
      depth: some.depth,
      ...(rowA ? { aMs: rowA.ms, aStartMs: rowA.startMs, aFailed: rowA.failed } : {}),
      ...(rowB ? { bMs: rowB.ms, bStartMs: rowB.startMs, bFailed: rowB.failed } : {}),
      diffMs: (rowB?.ms ?? 0) - (rowA?.ms ?? 0),
      ...(rowA && rowB && rowA.ms > 0 ? { ratio: rowB.ms / rowA.ms } : {}),
    });
    phases.push({
      ...both,
      ...(rowA ? { aMs: rowA.selfMs } : {}),
      ...(rowB ? { bMs: rowB.selfMs } : {}),
      diffMs: (rowB?.selfMs ?? 0) - (rowA?.selfMs ?? 0),
    });
  }
  const sideA = side(rowsA);
  const sideB = side(rowsB);
  const biggestFirst = (x: DiffPhase, y: DiffPhase): number => Math.abs(y.diffMs) - Math.abs(x.diffMs);
  return {
    a: sideA,
    b: sideB,
    rows,
    summary: {
      diffMs: sideB.totalMs - sideA.totalMs,
      ...(sideA.totalMs > 0 ? { ratio: sideB.totalMs / sideA.totalMs } : {}),
      slower: phases
        .filter((phase) => phase.diffMs > 0)
        .sort(biggestFirst)
        .slice(0, SUMMARY_PHASES),
      faster: phases
        .filter((phase) => phase.diffMs < 0)
        .sort(biggestFirst)
        .slice(0, SUMMARY_PHASES),
    },
  };
}

function side(rows: WaterfallRow[]): RunSide {
  return { totalMs: rows.reduce((end, row) => Math.max(end, row.endMs), 0), states: rows.length, path: runPath(rows) };
}

function key(row: WaterfallRow): string {
  return `${row.state}#${row.occurrence}`;
}

/**
 * Index pairs [a, b] in order: the keys both lists have, along their longest common subsequence, with
 * each list's other keys where they stand. Keys are unique within a list; one both have but in
 * another order (off the common subsequence) is still one row, at B's place.
 */
export function align(a: readonly string[], b: readonly string[]): [number | undefined, number | undefined][] {
  // lengths[i][j]: the longest common subsequence of a[i..] and b[j..].
  const lengths = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      const row = lengths[i] as number[];
      row[j] = a[i] === b[j] ? (lengths[i + 1]?.[j + 1] ?? 0) + 1 : Math.max(lengths[i + 1]?.[j] ?? 0, row[j + 1] ?? 0);
    }
  }
  const inB = new Map(b.map((value, index) => [value, index]));
  const inA = new Map(a.map((value, index) => [value, index]));
  const pairs: [number | undefined, number | undefined][] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      pairs.push([i++, j++]);
    } else if (j >= b.length || (i < a.length && (lengths[i + 1]?.[j] ?? 0) >= (lengths[i]?.[j + 1] ?? 0))) {
      // A's key off the common order: a row of its own unless B has it too (then it is B's row).
      if (!inB.has(a[i] as string)) pairs.push([i, undefined]);
      i += 1;
    } else {
      const partner = inA.get(b[j] as string);
      pairs.push([partner, j]);
      j += 1;
    }
  }
  return pairs;
}
