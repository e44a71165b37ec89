import { fromPromise } from 'xstate';
import type { VmRunner } from '../adapters/vm/runner.js';
import type { GuestUp, HealthResult, LaunchResult, RotateResult, StopResult } from '../machines/cold-boot.js';

export interface ColdBootSteps {
  /** The runner is asked for lazily: it can only be built once preflight has chosen ports and accel. */
  cold(): Promise<VmRunner>;
  rotate(runner: VmRunner, signal: AbortSignal): Promise<RotateResult>;
}

/** The cold-boot machine's actors: each wraps one call and passes its AbortSignal down. */
export function coldBootActors(steps: ColdBootSteps) {
  return {
    launchQemu: fromPromise<LaunchResult, void>(async ({ signal }) => (await steps.cold()).launch(signal)),
    waitForGuest: fromPromise<GuestUp, void>(async ({ signal }) => (await steps.cold()).waitForGuest(signal)),
    rotateSecrets: fromPromise<RotateResult, void>(async ({ signal }) => steps.rotate(await steps.cold(), signal)),
    probeHealth: fromPromise<HealthResult[], void>(async ({ signal }) =>
      (await (await steps.cold()).probeHealth(signal)).map((answer) => ({ url: answer.url, status: answer.status })),
    ),
    stopQemu: fromPromise<StopResult, void>(async () => (await steps.cold()).stop()),
  };
}
