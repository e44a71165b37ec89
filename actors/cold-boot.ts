import { fromPromise } from 'xstate';
import type { GuestUp, HealthResult, LaunchResult, PreparedBoot, RotateResult, StopResult } from '../machines/cold-boot.js';
import type { ColdBootSteps } from '../steps/cold-boot.js';

/** The cold-boot machine's actors: one step each, the AbortSignal passed down. */
export function coldBootActors(steps: ColdBootSteps) {
  return {
    prepareBoot: fromPromise<PreparedBoot, void>(({ signal }) => steps.prepareBoot(signal)),
    launchQemu: fromPromise<LaunchResult, void>(({ signal }) => steps.launchQemu(signal)),
    waitForGuest: fromPromise<GuestUp, void>(({ signal }) => steps.waitForGuest(signal)),
    rotateSecrets: fromPromise<RotateResult, void>(({ signal }) => steps.rotateSecrets(signal)),
    probeHealth: fromPromise<HealthResult[], void>(({ signal }) => steps.probeHealth(signal)),
    stopQemu: fromPromise<StopResult, void>(() => steps.stopQemu()),
  };
}
