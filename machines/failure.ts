import { isErrorCode, type ErrorCode } from '../shapes/error-codes.js';

/** Why a run failed, in words a person can act on. Built from whatever an actor threw. */
export interface Failure {
  /** The state that failed, e.g. `coldBoot.booting`. */
  state: string;
  code: ErrorCode;
  message: string;
  hint: string | undefined;
}

/** Reads code/message/hint off an error without importing the adapters' classes. */
export function toFailure(state: string, error: unknown): Failure {
  if (error instanceof Error) {
    const fields = error as Error & { code?: unknown; hint?: unknown };
    return {
      state,
      code: isErrorCode(fields.code) ? fields.code : 'E_UNEXPECTED',
      message: error.message,
      hint: typeof fields.hint === 'string' ? fields.hint : undefined,
    };
  }
  return { state, code: 'E_UNEXPECTED', message: String(error), hint: undefined };
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
