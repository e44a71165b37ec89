import { describeError, errorCode, WarmvmError } from '../adapters/support/errors.js';
import { withCauses } from '../machines/failure.js';
import type { Progress } from '../shapes/progress.js';
import { createProgress, type ProgressMode, progressMode } from './progress.js';

/** Where a command writes: results to stdout, progress and errors to stderr. */
export interface Output {
  json: boolean;
  /** Progress on stderr: bars and spinners on a terminal, lines on a pipe; none with --quiet, nor with --json on a pipe. */
  progress: Progress;
  /** The command's result: an object with --json, else lines. */
  result(value: unknown, human: string): void;
  error(error: unknown, extra?: Record<string, unknown>): void;
}

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
}

export async function createOutput(options: OutputOptions, mode: ProgressMode = progressMode(options)): Promise<Output> {
  const { json } = options;
  const progress = await createProgress(mode);
  return {
    json,
    progress,
    result(value, human) {
      // A bar still drawn on the terminal would be torn by the result's line.
      progress.done();
      process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
    },
    error(error, extra = {}) {
      progress.fail();
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
