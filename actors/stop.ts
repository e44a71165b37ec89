import { fromPromise } from 'xstate';
import type { Cleaned, Gone, InstanceFound, Suspended } from '../machines/stop.js';
import type { StopSteps } from '../steps/stop.js';

/** The stop machine's actors: one step each, the AbortSignal passed down. */
export function stopActors(steps: StopSteps) {
  return {
    findInstance: fromPromise<InstanceFound, void>(() => steps.findInstance()),
    terminate: fromPromise<Gone, { pid: number }>(({ input, signal }) => steps.signalAndWait(input.pid, 'SIGTERM', signal)),
    kill: fromPromise<Gone, { pid: number }>(({ input, signal }) => steps.signalAndWait(input.pid, 'SIGKILL', signal)),
    clean: fromPromise<Cleaned, void>(() => steps.clean()),
    suspend: fromPromise<Suspended, { pid: number }>(({ input, signal }) => steps.suspend(input.pid, signal)),
  };
}
