import type { Progress } from '../shapes/progress.js';
import type { InstancePaths } from '../adapters/instance/paths.js';
import { signalAndWaitGone } from '../adapters/qemu/process.js';
import { cleanInstance, findInstance } from '../adapters/vm/control.js';
import type { Cleaned, Gone, InstanceFound, Suspended } from '../machines/stop.js';
import { suspendInstance } from './suspend.js';

/** The stop machine's steps, one per actor. */
export interface StopSteps {
  findInstance(): Promise<InstanceFound>;
  /** Sends the signal, then resolves once the process is gone; the AbortSignal ends the wait. */
  signalAndWait(pid: number, how: 'SIGTERM' | 'SIGKILL', signal: AbortSignal): Promise<Gone>;
  clean(): Promise<Cleaned>;
  suspend(pid: number, signal: AbortSignal): Promise<Suspended>;
  /** Resolves once a suspend cut off by its bound has let its VM run on again: the command waits for it before it exits. */
  settled(): Promise<void>;
}

/** `cancel`: Ctrl-C of the command; a suspend under way is cut short by it, its VM let run on. */
export function stopSteps(paths: InstancePaths, options: { suspendMs: number; progress?: Progress; cancel?: AbortSignal }): StopSteps {
  let suspending: Promise<unknown> = Promise.resolve();
  return {
    suspend: (pid, signal) => {
      const either = options.cancel ? AbortSignal.any([signal, options.cancel]) : signal;
      const work = suspendInstance(paths, pid, { timeoutMs: options.suspendMs, signal: either, progress: options.progress });
      suspending = work.catch(() => undefined);
      return work;
    },
    settled: async () => {
      await suspending;
    },
    findInstance: () => findInstance(paths),
    signalAndWait: (pid, how, signal) => signalAndWaitGone(pid, how, signal),
    clean: () => cleanInstance(paths),
  };
}
