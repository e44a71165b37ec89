import { formatRunPath, runPath } from './run-path.js';
import type { WaterfallRow } from './waterfall.js';

/** Narrower than this, a bar has no room to say anything: lines are drawn this wide. */
export const MIN_WATERFALL_WIDTH = 40;

const INDENT = 2;
const MIN_BAR = 10;
const SECONDS_WIDTH = 8;
// The label, a space, the flag, a space, the bar, a space, the seconds.
const FIXED = 4 + SECONDS_WIDTH;
const MIN_TICK_GAP = 10;

const FULL = '█';
const EMPTY_STATE = '·';
const BOUND = '┤';

/**
 * The rows as a waterfall `width` columns wide: a header with the time axis, one line per state (its
 * name indented under the state that invoked its machine, `!` when a failure left it, its bar on the
 * axis, its seconds), under a failed state what left it, and a footer with the total and the path.
 */
export function formatWaterfall(rows: readonly WaterfallRow[], options: { width: number }): string[] {
  if (rows.length === 0) return ['(the trace has no entries)'];
  const width = Math.max(MIN_WATERFALL_WIDTH, Math.floor(options.width));
  const labels = rows.map((row) => `${' '.repeat(row.depth * INDENT)}${row.state}`);
  const labelWidth = Math.min(Math.max('state'.length, ...labels.map((label) => label.length)), width - FIXED - MIN_BAR);
  const barWidth = width - FIXED - labelWidth;
  const total = rows.reduce((end, row) => Math.max(end, row.endMs), 0);
  const axis = new Axis(total, barWidth);
  const lines = [`${'state'.padEnd(labelWidth)}   ${axis.header()} ${'seconds'.padStart(SECONDS_WIDTH)}`];
  for (const [index, row] of rows.entries()) {
    const flag = row.failed ? '!' : ' ';
    lines.push(`${clip(labels[index] ?? '', labelWidth).padEnd(labelWidth)} ${flag} ${axis.bar(row)} ${seconds(row.ms).padStart(SECONDS_WIDTH)}`);
    const noteIndent = ' '.repeat(Math.min(row.depth * INDENT + INDENT, labelWidth));
    if (row.failed && row.leftBy) lines.push(...wrap(`${noteIndent}! ${row.leftBy}${row.bound ? ` (${BOUND} its bound passed)` : ''}`, width, `${noteIndent}  `));
    if (row.warning) lines.push(...wrap(`${noteIndent}WARNING: ${row.warning}`, width, `${noteIndent}  `));
  }
  const roots = rows.filter((row) => row.depth === 0);
  const last = roots.at(-1) ?? (rows.at(-1) as WaterfallRow);
  lines.push(...wrap(`${seconds(total)} in all, ${rows.length} states, ended in ${last.state}`, width, '  '));
  lines.push(...wrap(`path: ${formatRunPath(runPath(rows))}`, width, '  '));
  return lines;
}

/** The time axis: milliseconds to columns of the bar area. */
class Axis {
  constructor(
    private readonly total: number,
    private readonly columns: number,
  ) {}

  /** The column a time falls in; a run of no length puts everything in the first. */
  column(ms: number): number {
    if (this.total <= 0) return 0;
    return Math.min(this.columns - 1, Math.floor((ms / this.total) * this.columns));
  }

  /** The state's bar: at least one cell for any time spent, a dot for none, the bound's marker where it passed. */
  bar(row: WaterfallRow): string {
    const cells = Array.from({ length: this.columns }, () => ' ');
    const start = this.column(row.startMs);
    if (row.ms <= 0) cells[start] = EMPTY_STATE;
    else {
      const end = this.total <= 0 ? start + 1 : Math.min(this.columns, Math.max(start + 1, Math.ceil((row.endMs / this.total) * this.columns)));
      for (let cell = start; cell < end; cell += 1) cells[cell] = FULL;
    }
    if (row.bound) cells[this.column(row.bound.atMs)] = BOUND;
    return cells.join('');
  }

  /** Tick labels at a round step, far enough apart to read: `0s        2s        4s`. */
  header(): string {
    const cells = Array.from({ length: this.columns }, () => ' ');
    const step = tickStep(this.total, this.columns);
    for (let ms = 0; ms <= this.total; ms += step) {
      const label = tickLabel(ms);
      const at = this.column(ms);
      if (at + label.length > this.columns) break;
      if (cells.slice(Math.max(0, at - 1), at + label.length + 1).some((cell) => cell !== ' ')) continue;
      for (const [offset, char] of [...label].entries()) cells[at + offset] = char;
      if (step <= 0) break;
    }
    return cells.join('');
  }
}

/** The smallest of 1, 2, 5 × 10^k ms that leaves MIN_TICK_GAP columns between ticks. */
function tickStep(total: number, columns: number): number {
  if (total <= 0) return 0;
  for (let power = 1; ; power *= 10) for (const factor of [1, 2, 5]) if (((factor * power) / total) * columns >= MIN_TICK_GAP) return factor * power;
}

function tickLabel(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)}s`;
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** Words wrapped to `width`, its leading spaces kept; a word longer than a line is cut across lines, never dropped. */
function wrap(text: string, width: number, indent: string): string[] {
  const lead = /^ */.exec(text)?.[0] ?? '';
  const lines: string[] = [];
  let line = lead;
  let empty = true;
  for (const word of text.slice(lead.length).split(' ')) {
    const candidate = empty ? `${line}${word}` : `${line} ${word}`;
    if (empty || candidate.length <= width) {
      line = candidate;
      empty = false;
    } else {
      lines.push(line);
      line = `${indent}${word}`;
    }
    while (line.length > width) {
      lines.push(line.slice(0, width));
      line = `${indent}${line.slice(width)}`;
    }
  }
  if (!empty) lines.push(line);
  return lines;
}
