import { fromPromise } from 'xstate';
import type { AccelResult, ImageResult, PreflightResult } from '../machines/start.js';

/** What the root machine's steps need done; `warmvm start` provides one per run. */
export interface StartSteps {
  preflight(signal: AbortSignal): Promise<PreflightResult>;
  prepareImage(signal: AbortSignal): Promise<ImageResult>;
  chooseAccelerator(signal: AbortSignal): Promise<AccelResult>;
}

export function startActors(steps: StartSteps) {
  return {
    preflight: fromPromise<PreflightResult, void>(({ signal }) => steps.preflight(signal)),
    prepareImage: fromPromise<ImageResult, void>(({ signal }) => steps.prepareImage(signal)),
    chooseAccelerator: fromPromise<AccelResult, void>(({ signal }) => steps.chooseAccelerator(signal)),
  };
}
