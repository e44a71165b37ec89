import { chmod, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { InstanceState } from '../adapters/instance/state.js';
import type { LaunchPlan } from '../adapters/qemu/argv.js';
import { inspectQemu } from '../adapters/qemu/binary.js';
import { captureToFile, continueAfterFailedMigration, continueVcpus, type MigrationProgress, pauseVcpus, quit } from '../adapters/qemu/monitor.js';
import { allocatedBytes, fileChecksum } from '../adapters/snapshot/checksum.js';
import { type MemoryFile, SNAPSHOT_FORMAT, type SnapshotFile, type SnapshotManifest } from '../adapters/snapshot/manifest.js';
import { sealInBackground } from '../adapters/snapshot/seal.js';
import { commitCapture, createCaptureDir, FROZEN_DISK, MEMORY_FILE, SNAPSHOT_FILE_MODE, STATE_FILE } from '../adapters/snapshot/store.js';
import { recordVerified } from '../adapters/snapshot/verify.js';
import { syncFile, writeFileDurably } from '../adapters/support/durable.js';
import { throwIfAborted, WarmvmError } from '../adapters/support/errors.js';
import type { HealthResult, RotateResult } from '../machines/cold-boot.js';
import type { Continued, Migrated, Paused, Recovered, Stored } from '../machines/capture.js';
import { releaseCaptureLock, takeCaptureLock } from './capture-lock.js';
import { noteSnapshotKey } from './hand-off.js';
import { need, type Run } from './run.js';
import { cpuModel, specHash, specSummary } from './spec-facts.js';
import { rotateOn } from './rotate.js';
import { dropColdMemory, launchDevices, probeHealth, vmRunner } from './vm.js';

/** The capture machine's steps, one per actor. */
export interface CaptureSteps {
  pauseVm(signal: AbortSignal): Promise<Paused>;
  migrateToFile(signal: AbortSignal): Promise<Migrated>;
  quitQemu(signal: AbortSignal): Promise<{ exited: boolean }>;
  storeSnapshot(signal: AbortSignal): Promise<Stored>;
  recoverVm(): Promise<Recovered>;
  continueVm(signal: AbortSignal): Promise<Continued>;
  rotateSecrets(signal: AbortSignal): Promise<RotateResult>;
  probeHealth(signal: AbortSignal): Promise<HealthResult[]>;
}

export function captureSteps(run: Run): CaptureSteps {
  const vm = () => need(run.cold, 'the cold-booted VM');
  return {
    pauseVm: async (signal) => {
      await holdCaptureLock(run);
      const dir = await createCaptureDir(need(run.snapshot, 'the snapshot'));
      run.captureDir = dir;
      run.cleanup.add('drop an unfinished capture', () => rm(dir, { recursive: true, force: true }));
      const runstate = await vm().whileRunning('pausing for capture', pauseVcpus(vm().qmpConnection(), { signal }));
      // Paused, the guest's RAM no longer changes: its file goes to the disk while the devices migrate.
      run.memoryFlush = syncFile(run.paths.memoryFile);
      run.memoryFlush.catch(() => undefined);
      return { runstate };
    },
    migrateToFile: (signal) => migrateToFile(run, signal),
    quitQemu: async (signal) => {
      await quit(vm().qmpConnection(), { timeoutMs: run.spec.bounds.stopMs, signal });
      await vm().waitExit(run.spec.bounds.stopMs);
      return { exited: true };
    },
    storeSnapshot: (signal) => {
      const storing = storeSnapshot(run, signal);
      run.storing = storing;
      return storing;
    },
    recoverVm: () => recoverVm(run),
    continueVm: (signal) => continueVm(run, signal),
    rotateSecrets: (signal) => rotateOn(run, vm(), signal),
    probeHealth: (signal) => probeHealth(vm(), signal),
  };
}

/**
 * For `warmvm capture`: the QEMU a previous start left running becomes this run's VM, with the
 * argv, ports and accelerator it was started with. A failed capture lets it run on.
 */
export async function adoptRunning(run: Run, state: InstanceState, signal: AbortSignal): Promise<void> {
  if (state.snapshot !== undefined || !state.argv.some((arg) => arg.startsWith('memory-backend-file,') && arg.includes(',share=on'))) {
    throw new WarmvmError('E_NOT_CAPTURABLE', `instance "${state.name}" cannot be captured: its RAM is not a memory file of its own`, {
      hint:
        state.snapshot !== undefined
          ? `it runs from snapshot ${state.snapshot} (a private copy-on-write mapping of that snapshot's memory file); for a new snapshot, "warmvm reset --snapshot --name ${state.name}" and start it again`
          : state.path === 'wake'
            ? `it was woken from its suspended state into RAM of its own that is in no file; "warmvm stop --suspend --name ${state.name}" keeps it as it is`
            : `it was started by an older warmvm; stop it and start it again (warmvm stop --name ${state.name}; warmvm start --name ${state.name} --no-capture)`,
    });
  }
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

/** The capture lock of this config: taken at `choosing` by a start, here by `warmvm capture`. Another start capturing it refuses this one. */
async function holdCaptureLock(run: Run): Promise<void> {
  const taken = await takeCaptureLock(run);
  if ('holder' in taken) {
    throw new WarmvmError('E_CAPTURE_BUSY', `another warmvm (pid ${taken.holder}) is capturing a snapshot of this config right now`, {
      hint: 'wait for it to finish; its snapshot serves this instance too',
    });
  }
}

async function migrateToFile(run: Run, signal: AbortSignal): Promise<Migrated> {
  const runner = need(run.cold, 'the cold-booted VM');
  const file = join(need(run.captureDir, 'the capture folder'), STATE_FILE);
  const onProgress = (p: MigrationProgress): void => run.progress.bytes('capture: device state', p.transferredBytes ?? 0, p.totalBytes);
  const result = await runner.whileRunning('migrating to file', captureToFile(runner.qmpConnection(), file, { timeoutMs: run.spec.bounds.captureMs, signal, onProgress }));
  const stateBytes = (await stat(file)).size;
  run.progress.done(`capture: device state written (${(stateBytes / 1e6).toFixed(1)} MB in ${(result.ms / 1000).toFixed(2)} s)`);
  return { stateBytes, ms: result.ms };
}

/** Flushed and checksummed at once, then made read-only: the device state and the frozen disk. */
async function freeze(path: string, signal: AbortSignal): Promise<SnapshotFile> {
  const [, sum] = await Promise.all([syncFile(path), fileChecksum(path, { signal })]);
  await chmod(path, SNAPSHOT_FILE_MODE);
  return { name: basename(path), bytes: sum.bytes, checksum: sum.checksum };
}

/**
 * The memory file flushed (`flushed`: the flush under way since the vCPUs paused) and made
 * read-only, its checksum left to the seal after publishing: reading back 3 GB the guest just
 * wrote cost a capture 1–2.5 s more here, the flush alone 0.5–0.7 s.
 */
async function freezeMemory(path: string, flushed: Promise<void> | undefined): Promise<MemoryFile> {
  await (flushed ?? syncFile(path));
  await chmod(path, SNAPSHOT_FILE_MODE);
  const found = await stat(path);
  return { name: basename(path), bytes: found.size, dataBytes: allocatedBytes(found) };
}

/**
 * The cold boot's memory file moved (never copied) beside the device state and the frozen disk,
 * each flushed and made read-only (the small ones checksummed); the manifest; then one rename
 * publishes them all, and a process of its own records the memory file's checksum (seal.ts).
 */
async function storeSnapshot(run: Run, signal: AbortSignal): Promise<Stored> {
  const dir = need(run.captureDir, 'the capture folder');
  const snapshot = need(run.snapshot, 'the snapshot');
  const qemu = need(run.qemu, 'QEMU');
  await rename(run.paths.memoryFile, join(dir, MEMORY_FILE));
  if (run.boot?.disk) await rename(run.paths.overlay, join(dir, FROZEN_DISK));
  const [memory, state, disk] = await Promise.all([
    freezeMemory(join(dir, MEMORY_FILE), run.memoryFlush),
    freeze(join(dir, STATE_FILE), signal),
    run.boot?.disk ? freeze(join(dir, FROZEN_DISK), signal) : undefined,
  ]);
  const manifest: SnapshotManifest = {
    format: SNAPSHOT_FORMAT,
    createdAt: new Date().toISOString(),
    capturedBy: run.paths.name,
    qemuVersion: qemu.version.text,
    machineType: qemu.machineType,
    accel: need(run.accel, 'the accelerator').accel,
    cpuModel: cpuModel(run),
    cpus: run.spec.cpus,
    memoryMb: run.spec.memoryMb,
    deviceArgv: launchDevices(run),
    specHash: specHash(run),
    spec: specSummary(run),
    files: { memory, state, disk },
  };
  await writeFileDurably(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await recordVerified({ dir, verified: join(dir, 'verified.json') }, manifest);
  // Past its bound (or Ctrl-C), recovering may have let the lock go: a late store must not publish.
  throwIfAborted(signal, 'storing the snapshot');
  await commitCapture(dir, snapshot);
  run.captureDir = undefined;
  run.manifest = manifest;
  // Starts waiting for this config resume it from here on, as this one does next.
  await releaseCaptureLock(run);
  await noteSnapshotKey(run, snapshot.key);
  // Detached on purpose: it outlives this command, and nothing here waits for it.
  const sealer = sealInBackground(run.home, snapshot.key, run.paths.sealLog);
  run.progress.done(
    'pid' in sealer
      ? `capture: published; the memory file's checksum is being recorded (pid ${sealer.pid}, log ${run.paths.sealLog})`
      : `capture: published, but its seal did not start (${sealer.error}); "warmvm snapshot seal ${snapshot.key}" records the memory file's checksum`,
  );
  return { snapshot: snapshot.dir, memoryDataBytes: memory.dataBytes };
}

/**
 * A capture that failed before QEMU quit, in a start: its migration cancelled, the half-made capture
 * dropped (on a full disk, that is the space back), the capture lock let go, and the paused VM run
 * again; rotation and the health checks follow, on this same VM.
 */
async function continueVm(run: Run, signal: AbortSignal): Promise<Continued> {
  const runner = need(run.cold, 'the cold-booted VM');
  const cancelled = continueAfterFailedMigration(runner.qmpConnection(), { timeoutMs: run.spec.bounds.stopMs, signal });
  const runstate = await runner.whileRunning('running the VM again after the failed capture', cancelled);
  await dropCapture(run);
  return { runstate, pid: need(runner.pid, "the cold-booted VM's pid") };
}

/** What a failed capture made: the capture folder, and the lock that made other starts wait for it. */
async function dropCapture(run: Run): Promise<string[]> {
  const dropped: string[] = [];
  if (run.captureDir) {
    await rm(run.captureDir, { recursive: true, force: true });
    dropped.push(run.captureDir);
    run.captureDir = undefined;
  }
  // Starts waiting for this capture need not wait through what follows: one of them captures instead.
  await releaseCaptureLock(run);
  return dropped;
}

/** After a failed capture: drop what was half made and the cold QEMU (the fallback boots anew). */
async function recoverVm(run: Run): Promise<Recovered> {
  // A store cut short by its bound may still be on its way: it publishes, or gives up, first.
  await run.storing?.catch(() => undefined);
  const dropped = await dropCapture(run);
  if (run.cold && run.adopted) {
    // Not ours to stop: if it was only paused, let it run on.
    if (await continueVcpus(run.cold.qmpConnection(), { timeoutMs: 5_000 })) dropped.push('nothing: the VM runs on');
    await run.cold.handOff();
  } else if (run.cold) {
    await run.cold.stop();
    await dropColdMemory(run);
    dropped.push('the cold-booted QEMU');
  }
  return { dropped };
}
