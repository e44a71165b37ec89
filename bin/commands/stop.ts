import { createActor, waitFor } from 'xstate';
import { stopActors } from '../../actors/stop.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import { fileExists } from '../../adapters/support/file-exists.js';
import { notRunning } from '../../adapters/vm/control.js';
import { acquireInstanceLock } from '../../adapters/instance/lock.js';
import { instancePaths } from '../../adapters/instance/paths.js';
import { archivePreviousTrace } from '../../adapters/trace/archive.js';
import { TraceRecorder } from '../../adapters/trace/recorder.js';
import { stopMachine, type StopBounds } from '../../machines/stop.js';
import { stopSteps } from '../../steps/stop.js';
import type { Output } from '../output.js';

export const STOP_BOUNDS: StopBounds = { checkMs: 10_000, termMs: 5_000, killMs: 5_000, cleanMs: 10_000 };

/** Stops an instance's QEMU through the stop machine, recording its trace like any run. */
export async function stopCommand(options: { name: string; home: string; output: Output }): Promise<number> {
  const paths = instancePaths(options.home, options.name);
  if (!(await fileExists(paths.dir))) throw notRunning(paths.name);
  const lock = await acquireInstanceLock(paths.lockFile, paths.name);
  try {
    await archivePreviousTrace(paths.traceFile);
    const trace = new TraceRecorder(paths.traceFile);
    const machine = stopMachine.provide({
      actors: stopActors(stopSteps(paths)),
    });
    const actor = createActor(machine, { input: { bounds: STOP_BOUNDS }, inspect: trace.inspect });
    actor.start();
    const report = (await waitFor(actor, (snapshot) => snapshot.status !== 'active', { timeout: Infinity })).output;
    if (!report || report.outcome === 'failed') {
      const failure = report?.failure;
      if (failure?.code === 'E_NOT_RUNNING') throw notRunning(paths.name);
      throw new WarmvmError(failure?.code ?? 'E_UNEXPECTED', `stop failed in ${failure?.state ?? 'stop'}: ${failure?.message ?? 'no result'}`, {
        hint: failure?.hint ?? `see the trace: ${paths.traceFile}`,
      });
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
