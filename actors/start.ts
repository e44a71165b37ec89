import { fromPromise } from 'xstate';
import type { AccelResult, CaptureWait, ImageResult, PreflightResult, PullResult, SnapshotChoice, SuspendedChoice } from '../machines/start.js';
import type { StartSteps } from '../steps/start.js';

/** The root machine's actors: one step each, the AbortSignal passed down. */
export function startActors(steps: StartSteps) {
  return {
    preflight: fromPromise<PreflightResult, void>(({ signal }) => steps.preflight(signal)),
    prepareImage: fromPromise<ImageResult, void>(({ signal }) => steps.prepareImage(signal)),
    chooseAccelerator: fromPromise<AccelResult, void>(({ signal }) => steps.chooseAccelerator(signal)),
    chooseSnapshot: fromPromise<SnapshotChoice, { capture: boolean }>(({ input }) => steps.chooseSnapshot(input.capture)),
    awaitCapture: fromPromise<CaptureWait, void>(({ signal }) => steps.awaitCapture(signal)),
    setAsideSnapshot: fromPromise<{ setAside: string | undefined; capturing: boolean }, { reason: string }>(({ input }) => steps.setAsideSnapshot(input.reason)),
    pullSnapshot: fromPromise<PullResult, void>(({ signal }) => steps.pullSnapshot(signal)),
    findSuspended: fromPromise<SuspendedChoice, void>(() => steps.findSuspended()),
  };
}
