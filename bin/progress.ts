import type { Output } from './output.js';

/** A terminal's line is redrawn at most this often; a pipe gets a line per quarter. */
const REDRAW_MS = 100;
const BAR_CELLS = 24;
const QUARTERS_FROM_BYTES = 64e6;

export interface TransferProgressLine {
  update(what: string, doneBytes: number, totalBytes: number): void;
  /** Ends the terminal's redrawn line (safe to call twice). */
  end(): void;
}

/**
 * Progress of a long byte-moving step: on a terminal one bar, redrawn in place, with bytes, rate
 * and time left; on a pipe or in CI a plain line at the end of every file, and at each quarter of a
 * large one. Hand-written: a few lines of arithmetic, and the progress library every long step will
 * share is chosen with the rest of the CLI's output.
 */
export function transferProgress(output: Output, tty = process.stderr.isTTY === true && process.env.TERM !== 'dumb'): TransferProgressLine {
  let current: { what: string; startedAt: number; drawnAt: number; quarter: number } | undefined;
  let drawn = false;
  const clear = () => {
    if (drawn) process.stderr.write('\n');
    drawn = false;
  };
  return {
    update(what, done, total) {
      const now = Date.now();
      if (current?.what !== what) {
        clear();
        current = { what, startedAt: now, drawnAt: 0, quarter: -1 };
      }
      const fraction = total > 0 ? Math.min(1, done / total) : 1;
      const rate = done / Math.max(0.001, (now - current.startedAt) / 1000);
      if (tty) {
        if (now - current.drawnAt < REDRAW_MS && fraction < 1) return;
        current.drawnAt = now;
        const cells = Math.round(fraction * BAR_CELLS);
        const left = rate > 0 && fraction < 1 ? `, ${Math.ceil((total - done) / rate)} s left` : '';
        process.stderr.write(`\r\x1b[K${what} [${'#'.repeat(cells)}${'.'.repeat(BAR_CELLS - cells)}] ${mb(done)}/${mb(total)} MB, ${mb(rate)} MB/s${left}`);
        drawn = true;
        return;
      }
      // A small file gets its one line at the end; a large one a line each quarter.
      const quarter = total < QUARTERS_FROM_BYTES ? Math.floor(fraction) * 4 : Math.floor(fraction * 4);
      if (quarter === 0 || quarter === current.quarter) return;
      current.quarter = quarter;
      output.progress(`${what}: ${Math.round(fraction * 100)}% of ${mb(total)} MB (${mb(rate)} MB/s)`);
    },
    end: clear,
  };
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(bytes >= 1e8 ? 0 : 1);
}
