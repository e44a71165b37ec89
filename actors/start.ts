import { fromPromise } from 'xstate';
import type { AccelResult, ImageResult, PreflightResult, SnapshotChoice } from '../machines/start.js';

/** What the root machine's own steps need done; `warmvm start` provides one per run. */
export interface StartSteps {
  preflight(signal: AbortSignal): Promise<PreflightResult>;
  prepareImage(signal: AbortSignal): Promise<ImageResult>;
  chooseAccelerator(signal: AbortSignal): Promise<AccelResult>;
  chooseSnapshot(forceCold: boolean): Promise<SnapshotChoice>;
  setAsideSnapshot(reason: string): Promise<{ setAside: string | undefined }>;
}

export function startActors(steps: StartSteps) {
  return {
    preflight: fromPromise<PreflightResult, void>(({ signal }) => steps.preflight(signal)),
    prepareImage: fromPromise<ImageResult, void>(({ signal }) => steps.prepareImage(signal)),
    chooseAccelerator: fromPromise<AccelResult, void>(({ signal }) => steps.chooseAccelerator(signal)),
    chooseSnapshot: fromPromise<SnapshotChoice, { forceCold: boolean }>(({ input }) => steps.chooseSnapshot(input.forceCold)),
    setAsideSnapshot: fromPromise<{ setAside: string | undefined }, { reason: string }>(({ input }) => steps.setAsideSnapshot(input.reason)),
  };
}
