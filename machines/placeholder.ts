import { fromPromise } from 'xstate';

/**
 * A machine names its actors with these; `actors/` provides the real ones and tests provide
 * fakes. One that was never provided fails loudly instead of hanging.
 */
export function placeholder<TOutput, TInput = void>(machine: string, name: string) {
  return fromPromise<TOutput, TInput>(async () => {
    throw new Error(`actor ${name} was not provided to the ${machine} machine`);
  });
}
