import type { Failure } from '../../machines/failure.js';
import { createActor, waitFor } from 'xstate';
import { captureActors } from '../../actors/capture.js';
import { CleanupStack } from '../../adapters/support/cleanup.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import { acquireInstanceLock } from '../../adapters/instance/lock.js';
import { readInstanceState } from '../../adapters/instance/state.js';
import type { Logger } from '../../adapters/support/logger.js';
import { ensureInstanceDir } from '../../adapters/instance/paths.js';
import { isInstanceQemu, removeRuntimeFiles } from '../../adapters/qemu/process.js';
import { archivePreviousTrace } from '../../adapters/trace/archive.js';
import { TraceRecorder } from '../../adapters/trace/recorder.js';
import { defaultSpec } from '../../adapters/spec/vm.js';
import { captureMachine } from '../../machines/capture.js';
import { adoptRunning, captureSteps } from '../../steps/capture.js';
import { createRun } from '../../steps/run.js';
import { specHash } from '../../steps/spec-facts.js';
import { prepareImage } from '../../steps/start.js';
import { onInterrupt } from '../interrupt.js';
import { seconds, type Output } from '../output.js';
import { startBounds } from './start.js';

/**
 * Captures a running instance (one started with --cold or --no-capture) into its snapshot. The
 * VM ends stopped, its RAM in the store; the next `warmvm start` resumes it.
 */
export async function captureCommand(options: { name: string; config: string | undefined; home: string; logger: Logger; output: Output }): Promise<number> {
  const { output, logger } = options;
  // Loaded only for a config, as in start.
  const spec = options.config ? await (await import('../../adapters/spec/config.js')).loadConfigFile(options.config) : defaultSpec();
  const paths = await ensureInstanceDir(options.home, options.name);
  const cleanup = new CleanupStack(logger);
  const lock = await acquireInstanceLock(paths.lockFile, paths.name);
  cleanup.add('release the instance lock', () => lock.release());
  try {
    const state = await readInstanceState(paths.stateFile);
    if (!state || !(await isInstanceQemu(state.pid, paths.qmpSocket))) {
      throw new WarmvmError('E_NOT_RUNNING', `instance "${options.name}" is not running: there is nothing to capture`, {
        hint: `start it first: warmvm start --name ${options.name} --no-capture`,
      });
    }
    const run = createRun({ spec, paths, home: options.home, cleanup, logger, progress: output.progress });
    const controller = new AbortController();
    await prepareImage(run, controller.signal);
    if (specHash(run) !== state.specHash) {
      throw new WarmvmError('E_CONFIG_CHANGED', `the config given differs from the one instance "${options.name}" was started with`, {
        hint: 'pass the same --config as to start (or none if start had none)',
      });
    }
    await adoptRunning(run, state, controller.signal);
    await archivePreviousTrace(paths.traceFile);
    const trace = new TraceRecorder(paths.traceFile);
    trace.onEntry((entry) => {
      if (entry.from && entry.ms !== undefined) output.progress.line(`  ${entry.from.padEnd(22)} ${(entry.ms / 1000).toFixed(2)} s`);
    });
    output.progress.line(`warmvm: capturing instance "${options.name}" (QEMU pid ${state.pid})`);
    const actor = createActor(captureMachine.provide({ actors: captureActors(captureSteps(run)) }), { input: { bounds: startBounds(spec) }, inspect: trace.inspect });
    const stopListening = onInterrupt(
      () => actor.send({ type: 'CANCEL' }),
      () => cleanup.runAll(),
    );
    actor.start();
    const final = await waitFor(actor, (snapshot) => snapshot.status !== 'active', { timeout: Infinity });
    stopListening();
    const result = final.output;
    const durations: Record<string, number | undefined> = { total: seconds(trace.elapsedMs()) };
    for (const [stateName, ms] of Object.entries(trace.durations())) durations[stateName] = seconds(ms);
    if (result?.outcome === 'captured') {
      await removeRuntimeFiles([paths.stateFile, paths.pidFile, paths.qmpSocket, paths.qgaSocket]);
      output.result(
        { name: options.name, outcome: 'captured', snapshot: result.snapshot, seconds: durations },
        `warmvm: instance "${options.name}" captured into ${result.snapshot} (${durations.total?.toFixed(2)} s); the VM is stopped, "warmvm start --name ${options.name}" resumes it`,
      );
      return 0;
    }
    const failure: Failure = result?.outcome === 'failed' ? result.failure : { state: 'capture', code: 'E_UNEXPECTED', message: 'capture ended without a result', hint: undefined };
    output.error(
      new WarmvmError(failure.code, `capture failed in ${failure.state}: ${failure.message}`, {
        hint: failure.hint ?? `the previous snapshot, if any, is kept; see ${paths.traceFile}`,
      }),
      {
        name: options.name,
        failedState: failure.state,
        seconds: durations,
      },
    );
    return failure.code === 'E_INTERRUPTED' ? 130 : 1;
  } finally {
    await cleanup.runAll();
  }
}
