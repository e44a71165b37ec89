/**
 * The shapes of a trace check's result: what `checkTrace` returns, what the report prints and what
 * `warmvm trace check --json` prints. Imports only the expected trace's shape.
 */
import type { ExpectedTrace } from './expected.js';

/** An entry as the check saw it: its position among the entries that have a state. */
export interface CheckedEntry {
  index: number;
  state: string;
  at: number;
  /** Time spent in this state until its machine left it; 0 if it never did. */
  ms: number;
  event: { type: string; error?: { code?: string; message?: string } };
  /** The event in one line, as `trace show` prints it. */
  summary: string;
}

/** One way the trace differs from the expected one, with what a message and a table need. */
export type TraceProblem =
  | {
      kind: 'sequence';
      message: string;
      /** The expected item that could not match; undefined when the expected list ended first. */
      item: { index: number; pattern: string } | undefined;
      /** The entry it met; undefined when the trace ended first. */
      entry: CheckedEntry | undefined;
      remainingExpected: string[];
      remainingActual: string[];
    }
  | { kind: 'maxMs'; message: string; item: { index: number; pattern: string }; maxMs: number; ms: number; entries: number[] }
  | { kind: 'absent'; message: string; pattern: string; entries: CheckedEntry[] }
  | { kind: 'maxTotalMs'; message: string; maxTotalMs: number; totalMs: number };

/** Which entries an expected item took. */
export interface AlignedItem {
  item: number;
  entries: number[];
}

/** The whole check: whether it passed, its problems, and the match the report draws. */
export interface TraceCheckResult {
  ok: boolean;
  problems: TraceProblem[];
  expected: ExpectedTrace;
  /** Names the trace in messages (its file). */
  actualSource: string;
  entries: CheckedEntry[];
  /** The match found, or, when none was, the furthest attempt up to where it diverged. */
  alignment: AlignedItem[];
  /** Where the sequence diverged: expected item and entry indexes (either may be one past the end). */
  divergence: { item: number; entry: number } | undefined;
}
