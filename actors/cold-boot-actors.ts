import { fromPromise } from 'xstate';
import type { VmRunner } from '../adapters/vm-runner.js';
import type { GuestUp, HealthResult, LaunchResult, StopResult } from '../machines/cold-boot.js';

/**
 * The cold-boot machine's actors: each wraps one VmRunner call and passes its AbortSignal down.
 * The runner is asked for lazily: it can only be built once preflight has chosen ports and accel.
 */
export function coldBootActors(runner: () => VmRunner) {
  return {
    launchQemu: fromPromise<LaunchResult, void>(({ signal }) => runner().launch(signal)),
    waitForGuest: fromPromise<GuestUp, void>(({ signal }) => runner().waitForGuest(signal)),
    probeHealth: fromPromise<HealthResult[], void>(async ({ signal }) =>
      (await runner().probeHealth(signal)).map((answer) => ({ url: answer.url, status: answer.status })),
    ),
    stopQemu: fromPromise<StopResult, void>(() => runner().stop()),
  };
}
