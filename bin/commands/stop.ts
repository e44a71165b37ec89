import { createActor, waitFor } from 'xstate';
import { stopActors } from '../../actors/stop.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import { fileExists } from '../../adapters/support/file-exists.js';
import { notRunning } from '../../adapters/vm/control.js';
import { acquireInstanceLock } from '../../adapters/instance/lock.js';
import { instancePaths } from '../../adapters/instance/paths.js';
import { suspendPaths } from '../../adapters/instance/suspended.js';
import { archivePreviousTrace } from '../../adapters/trace/archive.js';
import { TraceRecorder } from '../../adapters/trace/recorder.js';
import { stopMachine, type StopBounds } from '../../machines/stop.js';
import { stopSteps } from '../../steps/stop.js';
import { onInterrupt } from '../interrupt.js';
import type { Output } from '../output.js';

// A suspend writes the guest's RAM: a few GB at disk speed, with room for a slow, shared disk.
export const STOP_BOUNDS: StopBounds = { checkMs: 10_000, termMs: 5_000, killMs: 5_000, cleanMs: 10_000, suspendMs: 10 * 60_000 };

/** Stops (or, with `suspend`, suspends) an instance's QEMU through the stop machine, recording its trace like any run. */
export async function stopCommand(options: { name: string; home: string; suspend?: boolean; output: Output }): Promise<number> {
  const paths = instancePaths(options.home, options.name);
  if (!(await fileExists(paths.dir))) throw notRunning(paths.name);
  const lock = await acquireInstanceLock(paths.lockFile, paths.name);
  try {
    await archivePreviousTrace(paths.traceFile);
    const trace = new TraceRecorder(paths.traceFile);
    // Ctrl-C: a suspend under way is cancelled (the VM runs on as it was, nothing half-written is
    // left); a plain stop takes seconds at most and finishes. A second Ctrl-C leaves at once.
    const interrupt = new AbortController();
    const stopListening = onInterrupt(
      () => {
        options.output.progress.line(
          options.suspend ? 'warmvm: interrupted; cancelling the suspend (Ctrl-C again to leave now)' : 'warmvm: interrupted; finishing the stop (Ctrl-C again to leave now)',
        );
        interrupt.abort(new Error('interrupted (Ctrl-C)'));
      },
      async () => {
        await lock.release();
      },
    );
    const steps = stopSteps(paths, { suspendMs: STOP_BOUNDS.suspendMs, progress: options.output.progress, cancel: interrupt.signal });
    const machine = stopMachine.provide({ actors: stopActors(steps) });
    const actor = createActor(machine, { input: { bounds: STOP_BOUNDS, suspend: options.suspend ?? false }, inspect: trace.inspect });
    actor.start();
    const report = (await waitFor(actor, (snapshot) => snapshot.status !== 'active', { timeout: Infinity })).output;
    await steps.settled();
    stopListening();
    if (interrupt.signal.aborted && report?.outcome === 'failed' && options.suspend) {
      throw new WarmvmError('E_ABORTED', `the suspend of instance "${paths.name}" was cancelled (Ctrl-C)`, {
        hint: `it runs on as it was; "warmvm stop --suspend --name ${paths.name}" suspends it`,
        cause: report.failure.message,
      });
    }
    if (!report || report.outcome === 'failed') {
      const failure = report?.failure;
      if (failure?.code === 'E_NOT_RUNNING' && options.suspend && (await fileExists(suspendPaths(paths.dir).dir))) {
        throw new WarmvmError('E_NOT_RUNNING', `instance "${paths.name}" is suspended already`, {
          hint: `"warmvm start --name ${paths.name}" wakes it; "warmvm reset --name ${paths.name}" drops it`,
        });
      }
      if (failure?.code === 'E_NOT_RUNNING') throw notRunning(paths.name);
      throw new WarmvmError(failure?.code ?? 'E_UNEXPECTED', `stop failed in ${failure?.state ?? 'stop'}: ${failure?.message ?? 'no result'}`, {
        hint: failure?.hint ?? `see the trace: ${paths.traceFile}`,
      });
    }
    if (report.outcome === 'suspended') {
      const { dir, stateBytes, ms } = report.suspended;
      options.output.result(
        { name: paths.name, outcome: 'suspended', pid: report.pid, dir, stateBytes, ms, removed: report.removed },
        [
          `instance "${paths.name}" suspended in ${(ms / 1000).toFixed(2)} s (QEMU pid ${report.pid} quit; ${(stateBytes / 1e6).toFixed(0)} MB of RAM and devices kept in ${dir})`,
          `  "warmvm start --name ${paths.name}" wakes it with the secrets it has now; "warmvm reset --name ${paths.name}" drops it`,
        ].join('\n'),
      );
      return 0;
    }
    const human =
      report.outcome === 'stale-cleaned'
        ? `instance "${paths.name}" was not running (its QEMU had died); removed ${report.removed.length} stale file(s)`
        : `instance "${paths.name}" stopped (QEMU pid ${report.pid} ${report.how})`;
    options.output.result({ name: paths.name, outcome: report.outcome === 'stale-cleaned' ? 'stale-cleaned' : 'stopped', pid: report.pid ?? null, removed: report.removed }, human);
    return 0;
  } finally {
    await lock.release();
  }
}
