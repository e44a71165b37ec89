import { join } from 'node:path';
import { prepareBootFiles } from '../adapters/guest/boot-files.js';
import { ensureDemoGuest } from '../adapters/guest/demo/guest.js';
import { homePaths } from '../adapters/instance/paths.js';
import { assertPortFree } from '../adapters/instance/ports.js';
import { chooseAccelerator } from '../adapters/qemu/accel-probe.js';
import { inspectQemuCached } from '../adapters/qemu/binary.js';
import { isInstanceQemu, readPidFile, removeRuntimeFiles, stopProcess } from '../adapters/qemu/process.js';
import { readInstanceState } from '../adapters/instance/state.js';
import { removeDeadWritersFiles } from '../adapters/instance/dead-leftovers.js';
import { tryLock, type InstanceLock } from '../adapters/instance/lock.js';
import { sameCapture } from '../adapters/snapshot/manifest.js';
import { readSnapshot, setAside, snapshotPaths } from '../adapters/snapshot/store.js';
import { WarmvmError } from '../adapters/support/errors.js';
import { fileExists } from '../adapters/support/file-exists.js';
import { sleep } from '../adapters/support/sleep.js';
import type { AccelResult, CaptureWait, ImageResult, PreflightResult, PullResult, SnapshotChoice, SuspendedChoice } from '../machines/start.js';
import { holdCaptureLock, releaseCaptureLock, takeCaptureLock } from './capture-lock.js';
import { need, type Run } from './run.js';
import { judge } from './judge.js';
import { findSuspended } from './wake.js';
import { specHash } from './spec-facts.js';

/** The root machine's own steps, one per actor. */
export interface StartSteps {
  preflight(signal: AbortSignal): Promise<PreflightResult>;
  prepareImage(signal: AbortSignal): Promise<ImageResult>;
  chooseAccelerator(signal: AbortSignal): Promise<AccelResult>;
  chooseSnapshot(capture: boolean): Promise<SnapshotChoice>;
  awaitCapture(signal: AbortSignal): Promise<CaptureWait>;
  setAsideSnapshot(reason: string): Promise<{ setAside: string | undefined; capturing: boolean }>;
  pullSnapshot(signal: AbortSignal): Promise<PullResult>;
  findSuspended(): Promise<SuspendedChoice>;
}

/** The pull steps, loaded when a config pulls: the registry client, tar and zstd cost a start ~130 ms. */
const loadPull = (): Promise<typeof import('./pull.js')> => import('./pull.js');

/** How often a start waiting for another's capture looks again. */
const CAPTURE_POLL_MS = 100;

export function startSteps(run: Run): StartSteps {
  return {
    preflight: (signal) => preflight(run, signal),
    prepareImage: (signal) => prepareImage(run, signal),
    chooseAccelerator: (signal) => chooseAccel(run, signal),
    chooseSnapshot: (capture) => chooseSnapshot(run, capture),
    awaitCapture: (signal) => awaitCapture(run, signal),
    setAsideSnapshot: (reason) => setAsideResumed(run, reason),
    pullSnapshot: async (signal) => (await loadPull()).pullSnapshot(run, signal),
    findSuspended: () => findSuspended(run),
  };
}

/**
 * Refuse a second running copy, stop the QEMU of a start that was killed, clean a crash's leftovers,
 * check QEMU, check fixed ports.
 */
async function preflight(run: Run, signal: AbortSignal): Promise<PreflightResult> {
  const { paths } = run;
  const pid = await readPidFile(paths.pidFile);
  let unfinishedStopped: number | undefined;
  if (pid !== undefined && (await isInstanceQemu(pid, paths.qmpSocket))) {
    if ((await readInstanceState(paths.stateFile))?.pid === pid) {
      throw new WarmvmError('E_ALREADY_RUNNING', `instance "${paths.name}" is already running (QEMU pid ${pid})`, {
        hint: `"warmvm status --name ${paths.name}" shows it; "warmvm stop --name ${paths.name}" stops it; or start another with --name`,
      });
    }
    // No start recorded it healthy, and this one holds the instance's lock: the start that launched
    // it was killed. Its guest may be paused, or hold a snapshot's placeholder secrets.
    run.progress.line(`warmvm: instance "${paths.name}" has a QEMU (pid ${pid}) whose start did not finish: stopping it to start again`);
    await stopProcess(pid, { graceMs: run.spec.bounds.stopMs });
    unfinishedStopped = pid;
  }
  // What a warmvm killed mid-write left beside what it meant to publish.
  for (const dir of [paths.dir, homePaths(run.home).snapshots]) await removeDeadWritersFiles(dir);
  // The secrets of a VM that is gone: a start that does not rotate must not leave them looking current.
  await removeRuntimeFiles([paths.pidFile, paths.stateFile, paths.qmpSocket, paths.qgaSocket, paths.secretsFile, paths.memoryFile]);
  run.qemu = await inspectQemuCached(join(run.home, 'qemu-info.json'), undefined, signal);
  for (const forward of run.spec.ports) {
    if (forward.host !== undefined) await assertPortFree(forward.host, `forwarded to guest port ${forward.guest}`);
  }
  return { qemuVersion: run.qemu.version.text, machineType: run.qemu.machineType, ...(unfinishedStopped === undefined ? {} : { unfinishedStopped }) };
}

/** The kernel, initrd or disk QEMU boots (the demo guest built when missing). */
export async function prepareImage(run: Run, signal: AbortSignal): Promise<ImageResult> {
  if (run.spec.snapshotPull !== undefined) await (await loadPull()).pullGuestImage(run, signal);
  run.boot = await prepareBootFiles(run.spec.boot, {
    imagesDir: homePaths(run.home).images,
    overlay: run.paths.overlay,
    signal,
    logger: run.logger,
    onProgress: (line) => run.progress.activity('image', line),
    onTransfer: (what, done, total) => run.progress.bytes(what, done, total > 0 ? total : undefined),
    cleanup: run.cleanup,
  });
  run.progress.done();
  run.snapshot = snapshotPaths(homePaths(run.home).snapshots, specHash(run));
  return { image: run.boot.description, built: run.boot.built };
}

async function chooseAccel(run: Run, signal: AbortSignal): Promise<AccelResult> {
  const qemu = need(run.qemu, 'QEMU');
  const boot = need(run.boot, 'the boot files');
  const verdict = await chooseAccelerator({
    choice: run.spec.accel,
    qemuBinary: qemu.binary,
    qemuVersion: qemu.version.text,
    machineType: qemu.machineType,
    accelerators: qemu.accelerators,
    kernel: async () => boot.kernel ?? (await ensureDemoGuest({ imagesDir: homePaths(run.home).images, signal })).kernel,
    cacheFile: join(run.home, 'accel-probe.json'),
    signal,
  });
  run.accel = { accel: verdict.accel, reason: verdict.reason };
  return { accel: verdict.accel, reason: verdict.reason };
}

/**
 * The config's snapshot when it matches this host; else, with the capture lock held (a start
 * judges and sets aside only under it, so it never moves a snapshot another just published), the
 * reason it was set aside; or the word that another start holds the lock and is capturing now.
 */
async function chooseSnapshot(run: Run, capture: boolean): Promise<SnapshotChoice> {
  const snapshot = need(run.snapshot, 'the snapshot');
  const oldFormat = await setAsideOldFormat(run);
  const first = await judge(run);
  if (first.usable) return first.usable;
  const taken = await tryLock(snapshot.captureLock);
  // Whoever holds the lock replaces the snapshot: a start that will not capture just boots cold.
  if ('holder' in taken) return capture ? { status: 'capturing', holder: taken.holder } : notUsable(undefined);
  return await underCaptureLock(run, taken.lock, capture, oldFormat);
}

/**
 * Another start is capturing this config: wait until its lock is gone, then resume what it
 * captured, or, when it captured nothing (it failed, or was killed), capture here instead.
 */
async function awaitCapture(run: Run, signal: AbortSignal): Promise<CaptureWait> {
  const snapshot = need(run.snapshot, 'the snapshot');
  for (;;) {
    const taken = await tryLock(snapshot.captureLock);
    if ('lock' in taken) return await underCaptureLock(run, taken.lock, true, undefined);
    await sleep(CAPTURE_POLL_MS, signal);
  }
}

/** Judged again now that no capture can publish: usable (the lock let go), or set aside and the lock kept to capture. */
async function underCaptureLock(run: Run, lock: InstanceLock, capture: boolean, oldFormat: string | undefined): Promise<CaptureWait> {
  holdCaptureLock(run, lock);
  const verdict = await judge(run);
  if (verdict.reason !== undefined) await setAside(need(run.snapshot, 'the snapshot'), verdict.reason);
  if (verdict.usable || !capture) await releaseCaptureLock(run);
  return verdict.usable ?? notUsable(verdict.reason ?? oldFormat);
}

function notUsable(reason: string | undefined): Exclude<CaptureWait, { status: 'usable' }> {
  return reason === undefined ? { status: 'missing' } : { status: 'setAside', reason };
}

/**
 * After a resume found its snapshot bad: under the capture lock, set aside that very snapshot
 * (not one another start has published in its place since) and keep the lock to capture anew.
 * Another start holding the lock is replacing it already: this one boots cold without capturing.
 */
async function setAsideResumed(run: Run, reason: string): Promise<{ setAside: string | undefined; capturing: boolean }> {
  const snapshot = need(run.snapshot, 'the snapshot');
  if ('holder' in (await takeCaptureLock(run))) return { setAside: undefined, capturing: false };
  const found = await readSnapshot(snapshot);
  const resumed = run.manifest;
  const same = found.kind !== 'found' || resumed === undefined || sameCapture(found.manifest, resumed);
  if (same) return { setAside: await setAside(snapshot, reason), capturing: true };
  // A whole new one is there already: nothing to set aside, nothing to capture.
  await releaseCaptureLock(run);
  return { setAside: undefined, capturing: false };
}

/** A snapshot of an earlier format sits under the instance's name: set aside, with the format named as the reason. */
async function setAsideOldFormat(run: Run): Promise<string | undefined> {
  const old = snapshotPaths(homePaths(run.home).snapshots, run.paths.name);
  // One stat on every start: the store is read (and its interrupted commits finished) only when there is one.
  if (old.dir === need(run.snapshot, 'the snapshot').dir || !(await fileExists(old.dir))) return undefined;
  const found = await readSnapshot(old);
  if (found.kind !== 'unreadable') return undefined;
  await setAside(old, found.reason);
  return found.reason;
}
