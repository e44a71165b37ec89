import { fromPromise } from 'xstate';
import type { HealthResult, RotateResult } from '../machines/cold-boot.js';
import type { Continued, Migrated, Paused, Recovered, Stored } from '../machines/capture.js';
import type { CaptureSteps } from '../steps/capture.js';

/** The capture machine's actors: one step each, the AbortSignal passed down. */
export function captureActors(steps: CaptureSteps) {
  return {
    pauseVm: fromPromise<Paused, void>(({ signal }) => steps.pauseVm(signal)),
    migrateToFile: fromPromise<Migrated, void>(({ signal }) => steps.migrateToFile(signal)),
    quitQemu: fromPromise<{ exited: boolean }, void>(({ signal }) => steps.quitQemu(signal)),
    storeSnapshot: fromPromise<Stored, void>(({ signal }) => steps.storeSnapshot(signal)),
    recoverVm: fromPromise<Recovered, void>(() => steps.recoverVm()),
    continueVm: fromPromise<Continued, void>(({ signal }) => steps.continueVm(signal)),
    rotateSecrets: fromPromise<RotateResult, void>(({ signal }) => steps.rotateSecrets(signal)),
    probeHealth: fromPromise<HealthResult[], void>(({ signal }) => steps.probeHealth(signal)),
  };
}
