import type { ReportedCode } from '../../shapes/error-codes.js';

/**
 * The base of every error a person may read: what failed (message), what to do (hint),
 * and the underlying error kept as `cause`.
 */
export class WarmvmError extends Error {
  readonly code: ReportedCode;
  readonly hint: string | undefined;

  constructor(code: ReportedCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Renders an error for a terminal: message, the fix, and the chain of causes. */
export function describeError(error: unknown): string {
  const lines: string[] = [];
  let current: unknown = error;
  let depth = 0;
  while (current !== undefined && current !== null && depth < 5) {
    const message = current instanceof Error ? current.message : String(current);
    lines.push(depth === 0 ? message : `  caused by: ${message}`);
    if (depth === 0 && current instanceof WarmvmError && current.hint) lines.push(`  fix: ${current.hint}`);
    current = current instanceof Error ? current.cause : undefined;
    depth += 1;
  }
  return lines.join('\n');
}

/** The error's code when it is one of ours, else a generic one. */
export function errorCode(error: unknown): ReportedCode {
  return error instanceof WarmvmError ? error.code : 'E_UNEXPECTED';
}

/** Thrown by anything that stops early because its AbortSignal fired. */
export function abortError(signal: AbortSignal | undefined, what: string): WarmvmError {
  return new WarmvmError('E_ABORTED', `${what} was cancelled`, { cause: signal?.reason });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}
