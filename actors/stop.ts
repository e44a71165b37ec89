import { fromPromise } from 'xstate';
import type { Cleaned, Gone, InstanceFound } from '../machines/stop.js';

export interface StopSteps {
  findInstance(): Promise<InstanceFound>;
  /** Sends the signal, then resolves once the process is gone; the AbortSignal ends the wait. */
  signalAndWait(pid: number, how: 'SIGTERM' | 'SIGKILL', signal: AbortSignal): Promise<Gone>;
  clean(): Promise<Cleaned>;
}

/** The stop machine's actors: one call each, the AbortSignal passed down. */
export function stopActors(steps: StopSteps) {
  return {
    findInstance: fromPromise<InstanceFound, void>(() => steps.findInstance()),
    terminate: fromPromise<Gone, { pid: number }>(({ input, signal }) => steps.signalAndWait(input.pid, 'SIGTERM', signal)),
    kill: fromPromise<Gone, { pid: number }>(({ input, signal }) => steps.signalAndWait(input.pid, 'SIGKILL', signal)),
    clean: fromPromise<Cleaned, void>(() => steps.clean()),
  };
}
