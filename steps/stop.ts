import type { InstancePaths } from '../adapters/instance/paths.js';
import { signalAndWaitGone } from '../adapters/qemu/process.js';
import { cleanInstance, findInstance } from '../adapters/vm/control.js';
import type { Cleaned, Gone, InstanceFound } from '../machines/stop.js';

/** The stop machine's steps, one per actor. */
export interface StopSteps {
  findInstance(): Promise<InstanceFound>;
  /** Sends the signal, then resolves once the process is gone; the AbortSignal ends the wait. */
  signalAndWait(pid: number, how: 'SIGTERM' | 'SIGKILL', signal: AbortSignal): Promise<Gone>;
  clean(): Promise<Cleaned>;
}

export function stopSteps(paths: InstancePaths): StopSteps {
  return {
    findInstance: () => findInstance(paths),
    signalAndWait: (pid, how, signal) => signalAndWaitGone(pid, how, signal),
    clean: () => cleanInstance(paths),
  };
}
