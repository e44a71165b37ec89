import type { DiffPhase, RunSide, TraceDiff } from './diff.js';
import { formatRunPath } from './run-path.js';

const INDENT = 2;
const MAX_STATE_WIDTH = 40;
const TIME_WIDTH = 9;

/**
 * The diff as a table (each state's time in A and in B, B less A, B over A, `!` on a state a failure
 * left, `only in A`/`only in B`), then each run's total and path, then where B was slower and faster.
 */
export function formatTraceDiff(diff: TraceDiff, names: { a: string; b: string }): string[] {
  const labels = diff.rows.map((row) => `${' '.repeat(row.depth * INDENT)}${stateName(row)}`);
  const stateWidth = Math.min(MAX_STATE_WIDTH, Math.max('state'.length, ...labels.map((label) => label.length)));
  const lines = [`${'state'.padEnd(stateWidth)}  ${'A'.padStart(TIME_WIDTH)}  ${'B'.padStart(TIME_WIDTH)}  ${'B-A'.padStart(TIME_WIDTH)}  B/A`];
  for (const [index, row] of diff.rows.entries()) {
    const a = time(row.aMs, row.aFailed);
    const b = time(row.bMs, row.bFailed);
    const ratio = row.only === 'a' ? 'only in A' : row.only === 'b' ? 'only in B' : row.ratio === undefined ? '' : `${row.ratio.toFixed(2)}×`;
    lines.push(`${(labels[index] ?? '').padEnd(stateWidth)}  ${a.padStart(TIME_WIDTH)}  ${b.padStart(TIME_WIDTH)}  ${signed(row.diffMs).padStart(TIME_WIDTH)}  ${ratio}`.trimEnd());
  }
  lines.push('');
  lines.push(sideLine('A', names.a, diff.a), sideLine('B', names.b, diff.b));
  const { diffMs, ratio } = diff.summary;
  const times = ratio === undefined ? '' : ` (${ratio.toFixed(2)}×)`;
  if (diffMs === 0) lines.push(`B took as long as A${times}`);
  else lines.push(`B took ${seconds(Math.abs(diffMs))} ${diffMs > 0 ? 'longer' : 'less'} than A${times}`);
  if (diff.summary.slower.length > 0) lines.push(`B slower in: ${diff.summary.slower.map(phaseText).join(', ')}`);
  if (diff.summary.faster.length > 0) lines.push(`B faster in: ${diff.summary.faster.map(phaseText).join(', ')}`);
  if (diff.rows.some((row) => row.aFailed || row.bFailed)) lines.push('(! a failure left the state; B-A and the phases count a state only one run entered as 0 in the other)');
  return lines;
}

function sideLine(letter: string, name: string, side: RunSide): string {
  return `${letter}: ${name}: ${seconds(side.totalMs)}, ${side.states} states, path ${formatRunPath(side.path)}`;
}

/** `coldBoot.booting +3.754s (only in B)`: the state's own time, not its child machine's. */
function phaseText(phase: DiffPhase): string {
  const only = phase.only === 'a' ? ' (only in A)' : phase.only === 'b' ? ' (only in B)' : '';
  return `${stateName(phase)} ${signed(phase.diffMs)}${only}`;
}

/** `resume.preparing`, or `resume.preparing #2` for the second time a run entered it. */
function stateName(row: { state: string; occurrence: number }): string {
  return row.occurrence > 1 ? `${row.state} #${row.occurrence}` : row.state;
}

function time(ms: number | undefined, failed: boolean | undefined): string {
  if (ms === undefined) return '— ';
  return `${seconds(ms)}${failed ? '!' : ' '}`;
}

function signed(ms: number): string {
  return `${ms > 0 ? '+' : ms < 0 ? '-' : '±'}${seconds(Math.abs(ms))}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)}s`;
}
