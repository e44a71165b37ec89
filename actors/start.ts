import { fromPromise } from 'xstate';
import type { AccelResult, ImageResult, PreflightResult, SnapshotChoice } from '../machines/start.js';
import type { StartSteps } from '../steps/start.js';

/** The root machine's actors: one step each, the AbortSignal passed down. */
export function startActors(steps: StartSteps) {
  return {
    preflight: fromPromise<PreflightResult, void>(({ signal }) => steps.preflight(signal)),
    prepareImage: fromPromise<ImageResult, void>(({ signal }) => steps.prepareImage(signal)),
    chooseAccelerator: fromPromise<AccelResult, void>(({ signal }) => steps.chooseAccelerator(signal)),
    chooseSnapshot: fromPromise<SnapshotChoice, { forceCold: boolean }>(({ input }) => steps.chooseSnapshot(input.forceCold)),
    setAsideSnapshot: fromPromise<{ setAside: string | undefined }, { reason: string }>(({ input }) => steps.setAsideSnapshot(input.reason)),
  };
}
