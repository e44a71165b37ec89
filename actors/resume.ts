import { fromPromise } from 'xstate';
import type { HealthResult, RotateResult } from '../machines/cold-boot.js';
import type { Incoming, PreparedState, Resumed } from '../machines/resume.js';
import type { ResumeSteps } from '../steps/resume.js';

/** The resume machine's actors: one step each, the AbortSignal passed down. */
export function resumeActors(steps: ResumeSteps) {
  return {
    prepareState: fromPromise<PreparedState, void>(({ signal }) => steps.prepareState(signal)),
    launchIncoming: fromPromise<{ pid: number }, void>(({ signal }) => steps.launchIncoming(signal)),
    migrateIncoming: fromPromise<Incoming, void>(({ signal }) => steps.migrateIncoming(signal)),
    cont: fromPromise<Resumed, { agentSoon: boolean }>(({ signal, input }) => steps.cont(signal, input.agentSoon)),
    rotateSecrets: fromPromise<RotateResult, void>(({ signal }) => steps.rotateSecrets(signal)),
    probeHealth: fromPromise<HealthResult[], void>(({ signal }) => steps.probeHealth(signal)),
    stopQemu: fromPromise<{ how: string }, { countFailure: boolean; reason: string | undefined }>(({ input }) => steps.stopQemu(input.countFailure, input.reason)),
  };
}
