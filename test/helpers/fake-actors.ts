import { fromPromise } from 'xstate';

/** What a fake actor does: succeed with a value, fail with an error, or hang until aborted. */
export type Outcome<T> = { ok: T } | { fail: Error & { code?: string } } | 'hang';

/** A promise actor that records its call in `calls` and then does what `outcome` says. */
export function fakeActor<T>(outcome: Outcome<T>, calls: string[], name: string) {
  return fromPromise<T, void>(
    ({ signal }) =>
      new Promise<T>((resolve, reject) => {
        calls.push(name);
        if (outcome === 'hang') {
          signal.addEventListener('abort', () => reject(new Error('aborted')));
          return;
        }
        if ('ok' in outcome) resolve(outcome.ok);
        else reject(outcome.fail);
      }),
  );
}

export function errorWithCode(message: string, code: string): Error & { code: string; hint: string } {
  return Object.assign(new Error(message), { code, hint: 'do the thing' });
}
