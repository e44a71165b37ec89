import { reportedCode, type ReportedCode } from '../shapes/error-codes.js';

/** Why a run failed, in words a person can act on. Built from whatever an actor threw. */
export interface Failure {
  /** The state that failed, e.g. `coldBoot.booting`. */
  state: string;
  /** warmvm's code, or the code of a system error a step let through (ENOSPC), as `--json` reports it. */
  code: ReportedCode;
  message: string;
  hint: string | undefined;
}

/** The codes of a step whose QEMU died under it: no VM is left to run on or to stop. */
export const QEMU_GONE: ReadonlySet<ReportedCode> = new Set<ReportedCode>(['E_QEMU_EXITED', 'E_QEMU_CRASHED']);

/** How a machine that owns a QEMU ends when it fails: why, and why that QEMU could not be stopped (if so). */
export interface FailedOutput {
  outcome: 'failed';
  failure: Failure;
  stopError: string | undefined;
}

/** A failed run's output; one that ended with no failure recorded says so rather than claim success. */
export function failedOutput(machine: string, what: string, context: { failure: Failure | undefined; stopError: string | undefined }): FailedOutput {
  const failure = context.failure ?? { state: machine, code: 'E_UNEXPECTED', message: `${what} ended without a result`, hint: undefined };
  return { outcome: 'failed', failure, stopError: context.stopError };
}

/**
 * Reads code/message/hint off an error without importing the adapters' classes. The message carries
 * the causes that it does not already say ("cannot create the lock file …: ENOSPC: no space left on
 * device, open …"): a failure is read without the error it came from.
 */
export function toFailure(state: string, error: unknown): Failure {
  if (error instanceof Error) {
    const fields = error as Error & { code?: unknown; hint?: unknown };
    return {
      state,
      code: reportedCode(fields.code) ?? 'E_UNEXPECTED',
      message: withCauses(error),
      hint: typeof fields.hint === 'string' ? fields.hint : undefined,
    };
  }
  return { state, code: 'E_UNEXPECTED', message: String(error), hint: undefined };
}

/** An error's message followed by each cause's that it does not already contain, ": "-joined. */
export function withCauses(error: Error): string {
  let message = error.message;
  let cause: unknown = error.cause;
  for (let depth = 0; cause !== undefined && cause !== null && depth < 5; depth += 1) {
    const text = cause instanceof Error ? cause.message : String(cause);
    if (text !== '' && !message.includes(text)) message += `: ${text}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return message;
}

export function timeoutFailure(state: string, boundMs: number, waitingFor: string, hint: string): Failure {
  return { state, code: 'E_BOUND', message: `${waitingFor} did not happen within ${formatMs(boundMs)} (state ${state})`, hint };
}

export function interruptedFailure(state: string): Failure {
  return { state, code: 'E_INTERRUPTED', message: `interrupted (Ctrl-C) in state ${state}`, hint: undefined };
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
