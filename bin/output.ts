import { describeError, errorCode, WarmvmError } from '../adapters/support/errors.js';
import { withCauses } from '../machines/failure.js';

/** Where a command writes: results to stdout, progress and errors to stderr. */
export interface Output {
  json: boolean;
  /** Progress lines (stderr); silent with --json unless stderr is a terminal. */
  progress(line: string): void;
  /** The command's result: an object with --json, else lines. */
  result(value: unknown, human: string): void;
  error(error: unknown, extra?: Record<string, unknown>): void;
}

export function createOutput(json: boolean): Output {
  const showProgress = !json || process.stderr.isTTY === true;
  return {
    json,
    progress(line) {
      if (showProgress) process.stderr.write(`${line}\n`);
    },
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
    },
    error(error, extra = {}) {
      if (json) {
        const hint = error instanceof WarmvmError ? error.hint : undefined;
        // A program reads only this line: it says the causes too (ENOSPC: no space left on device, …).
        const message = error instanceof Error ? withCauses(error) : String(error);
        process.stdout.write(`${JSON.stringify({ ...extra, outcome: 'failed', error: { code: errorCode(error), message, hint } })}\n`);
      } else {
        process.stderr.write(`warmvm: ${describeError(error)}\n`);
      }
    },
  };
}

export function seconds(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.round(ms) / 1000;
}
