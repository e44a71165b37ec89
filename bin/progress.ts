import type { Ora } from 'ora';
import { type Progress, SILENT_PROGRESS } from '../shapes/progress.js';

/** Where progress goes: a redrawn spinner or bar, plain lines, or nowhere. */
export type ProgressMode = 'terminal' | 'lines' | 'none';

/** A bar's text is recomputed at most this often; ora redraws it every 80 ms. */
const REDRAW_MS = 50;
const BAR_CELLS = 20;
/** A file this large gets a plain line at each quarter; a smaller one only at its end. */
const QUARTERS_FROM_BYTES = 64e6;

type Environment = Record<string, string | undefined>;

/** The CLI's side of progress: a step cut short by an error is left marked as failed. */
export interface ProgressRenderer extends Progress {
  fail(): void;
}

/**
 * A terminal gets spinners and bars; a pipe, a dumb terminal or CI (where a redrawn line becomes
 * hundreds of lines in the job's log) gets plain lines. --json keeps a pipe's stderr quiet.
 */
export function progressMode(
  options: { quiet: boolean; json: boolean },
  stderr: { isTTY?: boolean; columns?: number } = process.stderr,
  env: Environment = process.env,
): ProgressMode {
  if (options.quiet) return 'none';
  // A pseudo-terminal nobody sized (script(1) on a pipe, some CI runners) has 0 columns: a redrawn
  // line's height cannot be known there, and ora would erase lines without end.
  const sized = (stderr.columns ?? 0) > 0;
  const terminal = stderr.isTTY === true && sized && env.TERM !== 'dumb' && (env.CI === undefined || env.CI === '' || env.CI === 'false');
  if (terminal) return 'terminal';
  return options.json ? 'none' : 'lines';
}

/** https://no-color.org: any non-empty value turns colour off. */
export function colorWanted(env: Environment = process.env): boolean {
  return env.NO_COLOR === undefined || env.NO_COLOR === '';
}

/** The renderer for `mode`; ora is loaded only for a terminal. */
export async function createProgress(mode: ProgressMode, write: (text: string) => void = (text) => process.stderr.write(text)): Promise<ProgressRenderer> {
  if (mode === 'none') return { ...SILENT_PROGRESS, fail() {} };
  if (mode === 'lines') return linesProgress(write);
  const { default: ora } = await import('ora');
  return terminalProgress((text) => ora({ text, stream: process.stderr, color: colorWanted() ? 'cyan' : false, discardStdin: false }).start(), write);
}

interface Step {
  what: string;
  startedAt: number;
  shownAt: number;
  text: string;
  /** For plain lines: the last quarter printed. */
  quarter: number;
}

/**
 * On a pipe: every line; a step's bytes at each quarter of a large file and once at its end; a
 * step's news each as a line (they are few: a guest build's phases).
 */
export function linesProgress(write: (text: string) => void, now: () => number = Date.now): ProgressRenderer {
  let step: Step | undefined;
  const enter = (what: string): Step => {
    if (step?.what !== what) step = { what, startedAt: now(), shownAt: 0, text: '', quarter: 0 };
    return step;
  };
  return {
    line: (text) => write(`${text}\n`),
    bytes(what, done, total) {
      const current = enter(what);
      if (total === undefined || total <= 0) return;
      const fraction = Math.min(1, done / total);
      const quarter = total < QUARTERS_FROM_BYTES ? Math.floor(fraction) * 4 : Math.floor(fraction * 4);
      if (quarter === 0 || quarter <= current.quarter) return;
      current.quarter = quarter;
      write(`  ${what}: ${Math.round(fraction * 100)}% of ${megabytes(total)} MB (${megabytes(rate(done, current.startedAt, now()))} MB/s)\n`);
    },
    activity(what, news) {
      enter(what);
      write(`  ${what}: ${news}\n`);
    },
    done(summary) {
      if (summary !== undefined) write(`  ${summary}\n`);
      step = undefined;
    },
    fail() {
      step = undefined;
    },
  };
}

/** On a terminal: one ora spinner per step, its text a bar with bytes, rate and time left, or the step's latest news. */
export function terminalProgress(
  spin: (text: string) => Pick<Ora, 'text' | 'clear' | 'render' | 'stopAndPersist'>,
  write: (text: string) => void,
  now: () => number = Date.now,
): ProgressRenderer {
  let step: (Step & { spinner: ReturnType<typeof spin> }) | undefined;
  const end = (symbol: string, summary?: string): void => {
    // A step too quick to have drawn anything still leaves its summary.
    if (!step) {
      if (summary !== undefined) write(`${symbol} ${summary}\n`);
      return;
    }
    step.spinner.stopAndPersist({ symbol, text: summary ?? step.text });
    step = undefined;
  };
  const finish = (summary?: string): void => end('✓', summary);
  const show = (what: string, text: string, force: boolean): void => {
    if (step?.what !== what) {
      finish();
      step = { what, startedAt: now(), shownAt: now(), text, quarter: 0, spinner: spin(text) };
      return;
    }
    if (!force && now() - step.shownAt < REDRAW_MS) return;
    step.shownAt = now();
    step.text = text;
    step.spinner.text = text;
  };
  return {
    line(text) {
      if (!step) return write(`${text}\n`);
      // A line above the spinner, which goes on below it.
      step.spinner.clear();
      write(`${text}\n`);
      step.spinner.render();
    },
    bytes(what, done, total) {
      const startedAt = step?.what === what ? step.startedAt : now();
      const speed = now() - startedAt >= RATE_AFTER_MS ? rate(done, startedAt, now()) : undefined;
      show(what, barText(what, done, total, speed), total !== undefined && done >= total);
    },
    activity(what, news) {
      show(what, `${what}: ${news}`, true);
    },
    done: finish,
    fail: () => end('✗'),
  };
}

/** "pull memory.raw [#####.....] 120/480 MB, 52.1 MB/s, 7 s left" (or without a bar when the total is not known). */
export function barText(what: string, done: number, total: number | undefined, bytesPerSecond: number | undefined): string {
  if (bytesPerSecond === undefined)
    return total === undefined || total <= 0 ? `${what} ${megabytes(done)} MB` : `${what} ${bar(done, total)} ${megabytes(done)}/${megabytes(total)} MB`;
  const speed = `${megabytes(bytesPerSecond)} MB/s`;
  if (total === undefined || total <= 0) return `${what} ${megabytes(done)} MB, ${speed}`;
  const left = bytesPerSecond > 0 && done < total ? `, ${Math.ceil((total - done) / bytesPerSecond)} s left` : '';
  return `${what} ${bar(done, total)} ${megabytes(done)}/${megabytes(total)} MB, ${speed}${left}`;
}

function bar(done: number, total: number): string {
  const cells = Math.round(Math.min(1, done / total) * BAR_CELLS);
  return `[${'#'.repeat(cells)}${'.'.repeat(BAR_CELLS - cells)}]`;
}

/** A rate over less than this is noise (the first chunk arrives in a millisecond): none is shown. */
const RATE_AFTER_MS = 500;

function rate(done: number, startedAt: number, at: number): number {
  return done / Math.max(0.001, (at - startedAt) / 1000);
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(bytes >= 1e8 ? 0 : 1);
}
