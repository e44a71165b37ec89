import { createOverlay } from '../adapters/qemu/overlay.js';
import type { GuestUp, HealthResult, LaunchResult, PreparedBoot, RotateResult, StopResult } from '../machines/cold-boot.js';
import { rotateOn } from './rotate.js';
import { need, type Run } from './run.js';
import { chooseForwards, coldArgv, dropColdMemory, probeHealth, stopIfLaunched, vmRunner, writeRuntimeDisk } from './vm.js';

/** From PATH, as QEMU itself is found: qemu-utils ships it beside qemu-system. */
export const QEMU_IMG = 'qemu-img';

/** The cold boot machine's steps, one per actor. */
export interface ColdBootSteps {
  prepareBoot(signal: AbortSignal): Promise<PreparedBoot>;
  launchQemu(signal: AbortSignal): Promise<LaunchResult>;
  waitForGuest(signal: AbortSignal): Promise<GuestUp>;
  rotateSecrets(signal: AbortSignal): Promise<RotateResult>;
  probeHealth(signal: AbortSignal): Promise<HealthResult[]>;
  stopQemu(): Promise<StopResult>;
}

export function coldBootSteps(run: Run): ColdBootSteps {
  const vm = () => need(run.cold, 'the cold-booted VM');
  return {
    prepareBoot: (signal) => prepareBoot(run, signal),
    launchQemu: (signal) => vm().launch(signal),
    waitForGuest: (signal) => vm().waitForGuest(signal),
    rotateSecrets: (signal) => rotateOn(run, vm(), signal),
    probeHealth: (signal) => probeHealth(vm(), signal),
    stopQemu: async () => {
      const stopped = await stopIfLaunched(run.cold);
      await dropColdMemory(run);
      return stopped;
    },
  };
}

/** Host ports chosen, the settings disk, a fresh overlay over the image, no memory file left from before. */
async function prepareBoot(run: Run, signal: AbortSignal): Promise<PreparedBoot> {
  run.cold = undefined;
  await chooseForwards(run);
  // What an earlier QEMU of this instance left: this boot writes its RAM there from zero.
  await dropColdMemory(run);
  const runtimeDisk = await writeRuntimeDisk(run);
  // Over the image itself, even when a failed resume left an overlay over its snapshot's disk.
  const base = need(run.boot, 'the boot files').overlayBase;
  if (base) await createOverlay({ qemuImg: QEMU_IMG, base: base.path, format: base.format, overlay: run.paths.overlay, signal });
  run.cold = vmRunner(run, coldArgv(run));
  return { forwards: run.forwards.length, overlay: base !== undefined, runtimeDisk };
}
