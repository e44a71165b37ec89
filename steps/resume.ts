import { stat } from 'node:fs/promises';
import { createOverlay } from '../adapters/qemu/overlay.js';
import { incomingFromFile, resumeVcpus } from '../adapters/qemu/monitor.js';
import { STATE_RAW, STATE_ZST } from '../adapters/snapshot/store.js';
import { decompressSparse } from '../adapters/snapshot/sparse-zstd.js';
import { WarmvmError } from '../adapters/support/errors.js';
import { fileExists } from '../adapters/support/file-exists.js';
import { QemuExitedError } from '../adapters/vm/qemu-exited.js';
import type { HealthResult, RotateResult } from '../machines/cold-boot.js';
import type { Incoming, PreparedState, Resumed } from '../machines/resume.js';
import { QEMU_IMG } from './cold-boot.js';
import { rotateOn } from './rotate.js';
import { need, type Run } from './run.js';
import { probeHealth, stopIfLaunched, vmRunner, writeRuntimeDisk } from './vm.js';

/** The resume machine's steps, one per actor. */
export interface ResumeSteps {
  prepareState(signal: AbortSignal): Promise<PreparedState>;
  launchIncoming(signal: AbortSignal): Promise<{ pid: number }>;
  migrateIncoming(signal: AbortSignal): Promise<Incoming>;
  cont(signal: AbortSignal): Promise<Resumed>;
  rotateSecrets(signal: AbortSignal): Promise<RotateResult>;
  probeHealth(signal: AbortSignal): Promise<HealthResult[]>;
  stopQemu(): Promise<{ how: string }>;
}

/** QEMU's words when it cannot load a state: the snapshot's fault, not a kill's. */
const LOAD_FAILED = /load of migration failed|Failed to load|Unknown savevm section|mapped-ram/i;

export function resumeSteps(run: Run): ResumeSteps {
  const vm = () => need(run.resumed, 'the resuming VM');
  return {
    prepareState: (signal) => prepareState(run, signal),
    launchIncoming: (signal) => {
      const manifest = need(run.manifest, 'the snapshot manifest');
      run.forwards = manifest.forwards;
      run.resumed = vmRunner(run, [...manifest.argv, '-incoming', 'defer']);
      return run.resumed.launch(signal);
    },
    migrateIncoming: (signal) => migrateIncoming(run, signal),
    cont: async (signal) => {
      await vm().whileRunning('resuming the vCPUs', resumeVcpus(vm().qmpConnection(), { timeoutMs: run.spec.bounds.incomingMs, signal }));
      return { runstate: 'running' };
    },
    rotateSecrets: (signal) => rotateOn(run, vm(), signal),
    probeHealth: (signal) => probeHealth(vm(), signal),
    stopQemu: () => stopIfLaunched(run.resumed),
  };
}

/** The sparse raw state, decompressed once from the .zst when missing or not whole; a fresh overlay. */
async function prepareState(run: Run, signal: AbortSignal): Promise<PreparedState> {
  run.resumed = undefined;
  const manifest = need(run.manifest, 'the snapshot manifest');
  const { snapshot } = run;
  const rawSize = (await stat(snapshot.stateRaw).catch(() => undefined))?.size;
  let decompressed = false;
  if (rawSize !== manifest.files.state.apparentBytes) {
    if (!(await fileExists(snapshot.stateZst))) {
      throw new WarmvmError('E_SNAPSHOT_MISSING', `the snapshot's state is missing: neither a whole ${STATE_RAW} nor ${STATE_ZST} in ${snapshot.dir}`, {
        hint: 'the cold boot runs instead and captures a new snapshot',
      });
    }
    run.progress('  resume: decompressing the snapshot state (once)');
    await decompressSparse(snapshot.stateZst, snapshot.stateRaw, { signal });
    decompressed = true;
  }
  // The snapshot's argv names this instance's settings disk; the guest read it when it booted.
  await writeRuntimeDisk(run);
  if (manifest.files.disk) await createOverlay({ qemuImg: QEMU_IMG, base: snapshot.disk, format: 'qcow2', overlay: run.paths.overlay, signal });
  return { stateFile: snapshot.stateRaw, decompressed };
}

async function migrateIncoming(run: Run, signal: AbortSignal): Promise<Incoming> {
  const runner = need(run.resumed, 'the resuming VM');
  const work = incomingFromFile(runner.qmpConnection(), run.snapshot.stateRaw, { timeoutMs: run.spec.bounds.incomingMs, signal });
  try {
    return { runstate: (await runner.whileRunning('loading the snapshot', work)).runstate };
  } catch (error) {
    if (error instanceof QemuExitedError && LOAD_FAILED.test(error.message)) {
      throw new WarmvmError('E_MIGRATION_INCOMING', `QEMU could not load the snapshot: ${error.message}`, { hint: 'the snapshot is set aside and captured anew', cause: error });
    }
    throw error;
  }
}
