import { readFile } from 'node:fs/promises';
import { createOverlay } from '../adapters/qemu/overlay.js';
import { incomingFromFile, resumeVcpus } from '../adapters/qemu/monitor.js';
import { parseManifest } from '../adapters/snapshot/manifest.js';
import { countResumeFailure } from '../adapters/snapshot/resume-failures.js';
import { pinSnapshot } from '../adapters/snapshot/store.js';
import { verifyBeforeLaunch } from '../adapters/snapshot/verify.js';
import { WarmvmError } from '../adapters/support/errors.js';
import { QemuExitedError } from '../adapters/vm/qemu-exited.js';
import type { HealthResult, RotateResult } from '../machines/cold-boot.js';
import type { Incoming, PreparedState, Resumed } from '../machines/resume.js';
import { QEMU_IMG } from './cold-boot.js';
import { rotateOn } from './rotate.js';
import { need, type Run } from './run.js';
import { prepareWake, setAsideWake, wakeArgv } from './wake.js';
import { chooseForwards, cloneArgv, probeHealth, stopIfLaunched, vmRunner, writeRuntimeDisk } from './vm.js';

/** The resume machine's steps, one per actor. */
export interface ResumeSteps {
  prepareState(signal: AbortSignal): Promise<PreparedState>;
  launchIncoming(signal: AbortSignal): Promise<{ pid: number }>;
  migrateIncoming(signal: AbortSignal): Promise<Incoming>;
  /** `agentSoon`: secrets go in next, so the agent's connection starts before `cont`. */
  cont(signal: AbortSignal, agentSoon: boolean): Promise<Resumed>;
  rotateSecrets(signal: AbortSignal): Promise<RotateResult>;
  probeHealth(signal: AbortSignal): Promise<HealthResult[]>;
  /** `countFailure`: the guest failed after `cont`, which counts against the snapshot. */
  stopQemu(countFailure: boolean, reason: string | undefined): Promise<{ how: string }>;
}

/** QEMU's words when it cannot load a state: the snapshot's fault, not a kill's. */
const LOAD_FAILED = /load of migration failed|Failed to load|Unknown savevm section|Unknown ramblock|Length mismatch/i;

export function resumeSteps(run: Run): ResumeSteps {
  const vm = () => need(run.resumed, 'the resuming VM');
  return {
    prepareState: (signal) => (run.suspended ? prepareWake(run) : prepareState(run, signal)),
    launchIncoming: (signal) => {
      run.resumed = vmRunner(run, [...(run.suspended ? wakeArgv(run) : cloneArgv(run)), '-incoming', 'defer']);
      return run.resumed.launch(signal);
    },
    migrateIncoming: (signal) => migrateIncoming(run, signal),
    cont: async (signal, agentSoon) => {
      if (agentSoon) vm().connectAgentSoon(run.spec.bounds.rotateMs);
      await vm().whileRunning('resuming the vCPUs', resumeVcpus(vm().qmpConnection(), { timeoutMs: run.spec.bounds.incomingMs, signal }));
      return { runstate: 'running' };
    },
    rotateSecrets: (signal) => rotateOn(run, vm(), signal),
    probeHealth: (signal) => probeHealth(vm(), signal),
    stopQemu: async (countFailure, reason) => {
      const stopped = await stopIfLaunched(run.resumed);
      if (run.suspended) await setAsideWake(run, reason);
      else if (countFailure) await countResumeFailure(need(run.pinned, 'the pinned snapshot'));
      return stopped;
    },
  };
}

/**
 * The snapshot's files checked (in full only where they changed since last checked), this
 * instance's ports, settings disk and a fresh overlay over the frozen disk.
 */
async function prepareState(run: Run, signal: AbortSignal): Promise<PreparedState> {
  run.resumed = undefined;
  const pin = await pinSnapshot(need(run.snapshot, 'the snapshot'));
  run.cleanup.add('let go of the snapshot folder', () => pin.close());
  const snapshot = pin.paths;
  run.pinned = snapshot;
  // Read again through the pin: the manifest of the very files this resume maps and loads.
  const manifest = await readFile(snapshot.manifest, 'utf8').then(parseManifest, (cause: unknown) => {
    throw new WarmvmError('E_SNAPSHOT_CORRUPT', `the snapshot's manifest.json cannot be read: ${(cause as Error).message}`, {
      hint: 'it is set aside; the cold boot captures a new one',
      cause,
    });
  });
  run.manifest = manifest;
  const verification = await verifyBeforeLaunch(snapshot, manifest, {
    signal,
    shownDir: need(run.snapshot, 'the snapshot').dir,
    onFullCheck: (file) => run.progress.line(`  resume: checking ${file} in full (it changed since it was last checked)`),
  });
  await chooseForwards(run);
  // The argv names this instance's settings disk; the guest read the capture's when it booted.
  await writeRuntimeDisk(run);
  // The overlay names its backing file for good: the real path, not the pin.
  if (manifest.files.disk) await createOverlay({ qemuImg: QEMU_IMG, base: need(run.snapshot, 'the snapshot').disk, format: 'qcow2', overlay: run.paths.overlay, signal });
  return { checked: verification.checked, forwards: run.forwards.length, overlay: manifest.files.disk !== undefined };
}

async function migrateIncoming(run: Run, signal: AbortSignal): Promise<Incoming> {
  const runner = need(run.resumed, 'the resuming VM');
  const work = run.suspended
    ? incomingFromFile(runner.qmpConnection(), run.suspended.paths.state, { timeoutMs: run.spec.bounds.incomingMs, signal, ram: 'stream' })
    : incomingFromFile(runner.qmpConnection(), need(run.pinned, 'the pinned snapshot').state, { timeoutMs: run.spec.bounds.incomingMs, signal });
  try {
    return { runstate: (await runner.whileRunning('loading the snapshot', work)).runstate };
  } catch (error) {
    if (error instanceof QemuExitedError && LOAD_FAILED.test(error.message)) {
      throw new WarmvmError('E_MIGRATION_INCOMING', `QEMU could not load the snapshot: ${error.message}`, { hint: 'the snapshot is set aside and captured anew', cause: error });
    }
    throw error;
  }
}
