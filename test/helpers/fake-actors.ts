import { fromPromise } from 'xstate';

/** What a fake actor does: succeed with a value, fail with an error, or hang until aborted. */
export type Outcome<T> = { ok: T } | { fail: Error & { code?: string } } | 'hang';

/** An actor that records its call (and its input in `inputs`, when given) and ends as `outcome` says. */
export function fakeActor<T, I = void>(outcome: Outcome<T>, calls: string[], name: string, inputs?: I[]) {
  return fromPromise<T, I>(
    ({ signal, input }) =>
      new Promise<T>((resolve, reject) => {
        calls.push(name);
        inputs?.push(input);
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
