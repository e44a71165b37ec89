import { fromPromise } from 'xstate';
import type { Migrated, Paused, Recovered, Stored } from '../machines/capture.js';

export interface CaptureSteps {
  pauseVm(signal: AbortSignal): Promise<Paused>;
  migrateToFile(signal: AbortSignal): Promise<Migrated>;
  quitQemu(signal: AbortSignal): Promise<{ exited: boolean }>;
  storeSnapshot(signal: AbortSignal): Promise<Stored>;
  recoverVm(): Promise<Recovered>;
}

/** The capture machine's actors: one call each, the AbortSignal passed down. */
export function captureActors(steps: CaptureSteps) {
  return {
    pauseVm: fromPromise<Paused, void>(({ signal }) => steps.pauseVm(signal)),
    migrateToFile: fromPromise<Migrated, void>(({ signal }) => steps.migrateToFile(signal)),
    quitQemu: fromPromise<{ exited: boolean }, void>(({ signal }) => steps.quitQemu(signal)),
    storeSnapshot: fromPromise<Stored, void>(({ signal }) => steps.storeSnapshot(signal)),
    recoverVm: fromPromise<Recovered, void>(() => steps.recoverVm()),
  };
}
