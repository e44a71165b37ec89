import { abortError } from '../../support/errors.js';

/** Something a connection is waiting for; failed all at once when the connection closes. */
export interface Waiter {
  readonly operation: string;
  fail(error: Error): void;
}

/** How whatever a wait set up ends it: with a value or an error. */
export interface Settle<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** What bounds one wait, and what it says when it gives up. */
export interface BoundedWaitOptions {
  operation: string;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  waiters: Set<Waiter>;
  timeoutError: () => Error;
  /** Runs before the promise rejects on timeout or abort (e.g. "the stream needs a resync"). */
  onGiveUp?: () => void;
}

/**
 * Waits for what `start` sets up, bounded by a timeout and an AbortSignal, and registered in
 * `waiters` so the connection can fail it on disconnect. `start` returns its own undo (remove a
 * listener, free a pending slot), run exactly once however the wait ends.
 */
export function boundedWait<T>(options: BoundedWaitOptions, start: (settle: Settle<T>) => () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const { operation, signal } = options;
    if (signal?.aborted) return reject(abortError(signal, operation));
    let done = false;
    let undo: (() => void) | undefined;
    const finish = (outcome: () => void): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      options.waiters.delete(waiter);
      undo?.();
      outcome();
    };
    const giveUp = (error: Error): void =>
      finish(() => {
        options.onGiveUp?.();
        reject(error);
      });
    const onAbort = (): void => giveUp(abortError(signal, operation));
    const waiter: Waiter = { operation, fail: (error) => finish(() => reject(error)) };
    // setTimeout fires at once for Infinity and overflows past 2^31-1 ms: no timer for "forever".
    const timer = Number.isFinite(options.timeoutMs) && options.timeoutMs < 2 ** 31 ? setTimeout(() => giveUp(options.timeoutError()), Math.max(0, options.timeoutMs)) : undefined;
    signal?.addEventListener('abort', onAbort, { once: true });
    options.waiters.add(waiter);
    const stop = start({ resolve: (value) => finish(() => resolve(value)), reject: (error) => finish(() => reject(error)) });
    // start may have settled synchronously (e.g. a write that failed at once).
    if (done) stop();
    else undo = stop;
  });
}
