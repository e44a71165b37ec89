import type { Progress } from '../shapes/progress.js';
import { rm, stat } from 'node:fs/promises';
import type { InstancePaths } from '../adapters/instance/paths.js';
import { readInstanceState } from '../adapters/instance/state.js';
import { beginSuspend, moveIfThere, publishSuspend, SUSPEND_FORMAT, type SuspendPaths } from '../adapters/instance/suspended.js';
import { captureToFile, continueAfterFailedMigration, quit } from '../adapters/qemu/monitor.js';
import { QmpClient } from '../adapters/qemu/protocol/qmp-client.js';
import { waitUntilGone } from '../adapters/qemu/process.js';
import { WarmvmError } from '../adapters/support/errors.js';
import type { Suspended } from '../machines/stop.js';

const QUIT_MS = 10_000;

export interface SuspendOptions {
  timeoutMs: number;
  signal: AbortSignal;
  progress?: Progress;
}

/**
 * `stop --suspend`: the VM paused and written out, RAM and devices, into one stream beside the
 * instance's folder; QEMU quit; its overlay and secrets moved in beside the stream; one rename
 * publishes it. Until QEMU has quit, any failure (or the bound) lets the VM run on.
 */
export async function suspendInstance(paths: InstancePaths, pid: number, options: SuspendOptions): Promise<Suspended> {
  const started = Date.now();
  const state = await readInstanceState(paths.stateFile);
  if (state?.facts === undefined) {
    throw new WarmvmError('E_NOT_SUSPENDABLE', `instance "${paths.name}" cannot be suspended: its state.json does not record what its VM depends on`, {
      hint: `it was started by an older warmvm; stop it and start it again (warmvm stop --name ${paths.name}; warmvm start --name ${paths.name})`,
    });
  }
  const temp = await beginSuspend(paths.dir);
  let connected: QmpClient | undefined;
  try {
    connected = await QmpClient.connect(paths.qmpSocket, { signal: options.signal });
    await writeOut(connected, temp, options);
  } catch (error) {
    // Nothing was lost yet: the VM goes on where it was (its migration cancelled first: one cut
    // short by Ctrl-C or the bound still runs), and the half-written stream goes. Cut short
    // before QMP answered, the VM was never touched.
    const resumed = connected
      ? await continueAfterFailedMigration(connected, { timeoutMs: 5_000 }).then(
          () => true,
          () => false,
        )
      : true;
    await connected?.close();
    await rm(temp.dir, { recursive: true, force: true });
    throw new WarmvmError('E_SUSPEND', `suspending instance "${paths.name}" failed: ${(error as Error).message}`, {
      hint: resumed ? 'the instance runs on as it was; free disk space in the warmvm home, or stop without --suspend' : 'see qemu.log in the instance folder',
      cause: error,
    });
  }
  const qmp = connected;
  await quit(qmp, { timeoutMs: QUIT_MS });
  await qmp.close();
  if (!(await waitUntilGone(pid, QUIT_MS))) {
    throw new WarmvmError('E_QEMU_QUIT', `QEMU (pid ${pid}) did not exit within ${QUIT_MS} ms of quit; its state is written in ${temp.dir}`, {
      hint: `stop it with "warmvm stop --name ${paths.name}"; the written state is set aside by the next suspend`,
    });
  }
  const disk = await moveIfThere(paths.overlay, temp.disk);
  const secrets = await moveIfThere(paths.secretsFile, temp.secrets);
  const stateBytes = (await stat(temp.state)).size;
  const published = await publishSuspend(temp, {
    ...state.facts,
    format: SUSPEND_FORMAT,
    suspendedAt: new Date().toISOString(),
    path: state.path,
    snapshot: disk ? state.diskSnapshot : undefined,
    stateBytes,
    disk,
    secrets,
  });
  return { dir: published.dir, stateBytes, ms: Date.now() - started };
}

async function writeOut(qmp: QmpClient, temp: SuspendPaths, options: SuspendOptions): Promise<void> {
  await captureToFile(qmp, temp.state, {
    ram: 'stream',
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    onProgress: (p) => options.progress?.bytes('suspend: writing the RAM', p.transferredBytes ?? 0, p.totalBytes),
  });
  options.progress?.done();
}
