import { fromPromise } from 'xstate';
import type { VmRunner } from '../adapters/vm/runner.js';
import type { HealthResult } from '../machines/cold-boot.js';
import type { Incoming, PreparedState, Resumed, Rotated } from '../machines/resume.js';

export interface ResumeSteps {
  prepareState(signal: AbortSignal): Promise<PreparedState>;
  launchIncoming(signal: AbortSignal): Promise<{ pid: number }>;
  migrateIncoming(signal: AbortSignal): Promise<Incoming>;
  cont(signal: AbortSignal): Promise<Resumed>;
  rotate(runner: VmRunner, signal: AbortSignal): Promise<Rotated>;
  resumed(): VmRunner;
  /** The resuming VM's runner, or undefined when the resume failed before launching. */
  resumedIfLaunched(): VmRunner | undefined;
}

/** The resume machine's actors: one call each, the AbortSignal passed down. */
export function resumeActors(steps: ResumeSteps) {
  return {
    prepareState: fromPromise<PreparedState, void>(({ signal }) => steps.prepareState(signal)),
    launchIncoming: fromPromise<{ pid: number }, void>(({ signal }) => steps.launchIncoming(signal)),
    migrateIncoming: fromPromise<Incoming, void>(({ signal }) => steps.migrateIncoming(signal)),
    cont: fromPromise<Resumed, void>(({ signal }) => steps.cont(signal)),
    rotateSecrets: fromPromise<Rotated, void>(({ signal }) => steps.rotate(steps.resumed(), signal)),
    probeHealth: fromPromise<HealthResult[], void>(async ({ signal }) =>
      (await steps.resumed().probeHealth(signal)).map((answer) => ({ url: answer.url, status: answer.status })),
    ),
    // A resume that failed before launching has no QEMU to stop.
    stopQemu: fromPromise<{ how: string }, void>(async () => (await steps.resumedIfLaunched()?.stop()) ?? { how: 'nothing was launched' }),
  };
}
