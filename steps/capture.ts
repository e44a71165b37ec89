import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InstanceState } from '../adapters/instance/state.js';
import type { LaunchPlan } from '../adapters/qemu/argv.js';
import { inspectQemu } from '../adapters/qemu/binary.js';
import { captureToFile, continueVcpus, pauseVcpus, quit } from '../adapters/qemu/monitor.js';
import type { SnapshotManifest } from '../adapters/snapshot/manifest.js';
import { commitCapture, createCaptureDir, FROZEN_DISK, STATE_RAW, STATE_ZST } from '../adapters/snapshot/store.js';
import { compressSparse } from '../adapters/snapshot/sparse-zstd.js';
import { WarmvmError } from '../adapters/support/errors.js';
import type { Migrated, Paused, Recovered, Stored } from '../machines/capture.js';
import { need, type Run } from './run.js';
import { cpuModel, specHash, specSummary } from './spec-facts.js';
import { vmRunner } from './vm.js';

/** The capture machine's steps, one per actor. */
export interface CaptureSteps {
  pauseVm(signal: AbortSignal): Promise<Paused>;
  migrateToFile(signal: AbortSignal): Promise<Migrated>;
  quitQemu(signal: AbortSignal): Promise<{ exited: boolean }>;
  storeSnapshot(signal: AbortSignal): Promise<Stored>;
  recoverVm(): Promise<Recovered>;
}

export function captureSteps(run: Run): CaptureSteps {
  const vm = () => need(run.cold, 'the cold-booted VM');
  return {
    pauseVm: async (signal) => {
      const dir = await createCaptureDir(run.snapshot);
      run.captureDir = dir;
      run.cleanup.add('drop an unfinished capture', () => rm(dir, { recursive: true, force: true }));
      return { runstate: await vm().whileRunning('pausing for capture', pauseVcpus(vm().qmpConnection(), { signal })) };
    },
    migrateToFile: (signal) => migrateToFile(run, signal),
    quitQemu: async (signal) => {
      await quit(vm().qmpConnection(), { timeoutMs: run.spec.bounds.stopMs, signal });
      await vm().waitExit(run.spec.bounds.stopMs);
      return { exited: true };
    },
    storeSnapshot: (signal) => storeSnapshot(run, signal),
    recoverVm: () => recoverVm(run),
  };
}

/**
 * For `warmvm capture`: the QEMU a previous start left running becomes this run's VM, with the
 * argv, ports and accelerator it was started with. A failed capture lets it run on.
 */
export async function adoptRunning(run: Run, state: InstanceState, signal: AbortSignal): Promise<void> {
  run.qemu = await inspectQemu(undefined, signal);
  if (run.qemu.version.text !== state.qemuVersion) {
    throw new WarmvmError('E_QEMU_CHANGED', `QEMU changed since instance "${state.name}" started (${state.qemuVersion} → ${run.qemu.version.text})`, {
      hint: 'restart the instance (warmvm stop, warmvm start) and capture again',
    });
  }
  run.accel = { accel: state.accel as LaunchPlan['accel'], reason: 'as started' };
  run.forwards = state.forwards;
  run.adopted = true;
  run.cold = vmRunner(run, state.argv);
  await run.cold.attach(state.pid, signal);
}

async function migrateToFile(run: Run, signal: AbortSignal): Promise<Migrated> {
  const runner = need(run.cold, 'the cold-booted VM');
  const file = join(need(run.captureDir, 'the capture folder'), STATE_RAW);
  const onProgress = (p: { status: string; transferredBytes: number | undefined }): void =>
    run.progress(`  capture: ${p.status}${p.transferredBytes !== undefined ? ` ${(p.transferredBytes / 1e6).toFixed(0)} MB` : ''}`);
  const result = await runner.whileRunning('migrating to file', captureToFile(runner.qmpConnection(), file, { timeoutMs: run.spec.bounds.captureMs, signal, onProgress }));
  return { apparentBytes: (await stat(file)).size, ms: result.ms };
}

/** Compress, freeze the disk overlay, write the manifest, then rename into place. */
async function storeSnapshot(run: Run, signal: AbortSignal): Promise<Stored> {
  const dir = need(run.captureDir, 'the capture folder');
  const qemu = need(run.qemu, 'QEMU');
  const zst = await compressSparse(join(dir, STATE_RAW), join(dir, STATE_ZST), { signal });
  let disk: SnapshotManifest['files']['disk'];
  if (run.boot?.disk) {
    // The overlay the RAM belongs to, frozen: resumes run on fresh overlays over it.
    await rename(run.paths.overlay, join(dir, FROZEN_DISK));
    disk = { name: FROZEN_DISK, bytes: (await stat(join(dir, FROZEN_DISK))).size };
  }
  const manifest: SnapshotManifest = {
    format: 1,
    createdAt: new Date().toISOString(),
    instance: run.paths.name,
    qemuVersion: qemu.version.text,
    machineType: qemu.machineType,
    accel: need(run.accel, 'the accelerator').accel,
    cpuModel: cpuModel(run),
    cpus: run.spec.cpus,
    memoryMb: run.spec.memoryMb,
    argv: need(run.cold, 'the cold-booted VM').argv,
    specHash: specHash(run),
    spec: specSummary(run),
    forwards: run.forwards,
    files: {
      state: { name: STATE_RAW, apparentBytes: zst.apparentBytes, dataBytes: zst.dataBytes, sha256: zst.sha256 },
      stateZst: { name: STATE_ZST, bytes: zst.compressedBytes, sha256: zst.sha256 },
      disk,
    },
  };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  await commitCapture(dir, run.snapshot);
  run.captureDir = undefined;
  run.manifest = manifest;
  return { snapshot: run.snapshot.dir, compressedBytes: zst.compressedBytes };
}

/** After a failed capture: drop what was half made and the cold QEMU (the fallback boots anew). */
async function recoverVm(run: Run): Promise<Recovered> {
  const dropped: string[] = [];
  if (run.captureDir) {
    await rm(run.captureDir, { recursive: true, force: true });
    dropped.push(run.captureDir);
    run.captureDir = undefined;
  }
  if (run.cold && run.adopted) {
    // Not ours to stop: if it was only paused, let it run on.
    if (await continueVcpus(run.cold.qmpConnection(), { timeoutMs: 5_000 })) dropped.push('nothing: the VM runs on');
    await run.cold.handOff();
  } else if (run.cold) {
    await run.cold.stop();
    dropped.push('the cold-booted QEMU');
  }
  return { dropped };
}
