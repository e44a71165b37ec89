import { join } from 'node:path';
import { prepareBootFiles } from '../adapters/guest/boot-files.js';
import { ensureDemoGuest } from '../adapters/guest/demo/guest.js';
import { homePaths } from '../adapters/instance/paths.js';
import { assertPortFree, isPortFree } from '../adapters/instance/ports.js';
import { chooseAccelerator } from '../adapters/qemu/accel-probe.js';
import { inspectQemuCached } from '../adapters/qemu/binary.js';
import { isInstanceQemu, readPidFile, removeRuntimeFiles } from '../adapters/qemu/process.js';
import { manifestMismatch } from '../adapters/snapshot/manifest.js';
import { readSnapshot, setAside } from '../adapters/snapshot/store.js';
import { WarmvmError } from '../adapters/support/errors.js';
import type { AccelResult, ImageResult, PreflightResult, SnapshotChoice } from '../machines/start.js';
import { need, type Run } from './run.js';
import { hostFacts } from './spec-facts.js';

/** The root machine's own steps, one per actor. */
export interface StartSteps {
  preflight(signal: AbortSignal): Promise<PreflightResult>;
  prepareImage(signal: AbortSignal): Promise<ImageResult>;
  chooseAccelerator(signal: AbortSignal): Promise<AccelResult>;
  chooseSnapshot(forceCold: boolean): Promise<SnapshotChoice>;
  setAsideSnapshot(reason: string): Promise<{ setAside: string | undefined }>;
}

export function startSteps(run: Run): StartSteps {
  return {
    preflight: (signal) => preflight(run, signal),
    prepareImage: (signal) => prepareImage(run, signal),
    chooseAccelerator: (signal) => chooseAccel(run, signal),
    chooseSnapshot: (forceCold) => chooseSnapshot(run, forceCold),
    setAsideSnapshot: async (reason) => ({ setAside: await setAside(run.snapshot, reason) }),
  };
}

/** Refuse a second running copy, clean a crash's leftovers, check QEMU, check fixed ports. */
async function preflight(run: Run, signal: AbortSignal): Promise<PreflightResult> {
  const { paths } = run;
  const pid = await readPidFile(paths.pidFile);
  if (pid !== undefined && (await isInstanceQemu(pid, paths.qmpSocket))) {
    throw new WarmvmError('E_ALREADY_RUNNING', `instance "${paths.name}" is already running (QEMU pid ${pid})`, {
      hint: `"warmvm status --name ${paths.name}" shows it; "warmvm stop --name ${paths.name}" stops it; or start another with --name`,
    });
  }
  // The secrets of a VM that is gone: a start that does not rotate must not leave them looking current.
  await removeRuntimeFiles([paths.pidFile, paths.stateFile, paths.qmpSocket, paths.qgaSocket, paths.secretsFile]);
  run.qemu = await inspectQemuCached(join(run.home, 'qemu-info.json'), undefined, signal);
  for (const forward of run.spec.ports) {
    if (forward.host !== undefined) await assertPortFree(forward.host, `forwarded to guest port ${forward.guest}`);
  }
  return { qemuVersion: run.qemu.version.text, machineType: run.qemu.machineType };
}

/** The kernel, initrd or disk QEMU boots (the demo guest built when missing). */
export async function prepareImage(run: Run, signal: AbortSignal): Promise<ImageResult> {
  run.boot = await prepareBootFiles(run.spec.boot, {
    imagesDir: homePaths(run.home).images,
    overlay: run.paths.overlay,
    signal,
    logger: run.logger,
    onProgress: (line) => run.progress(`  image: ${line}`),
  });
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

/** A snapshot that matches this host and spec is usable; one that cannot match is set aside. */
async function chooseSnapshot(run: Run, forceCold: boolean): Promise<SnapshotChoice> {
  if (forceCold) return { status: 'missing' };
  const found = await readSnapshot(run.snapshot);
  if (found.kind === 'missing') return { status: 'missing' };
  if (found.kind === 'unreadable') return await setAsideFor(run, found.reason);
  const mismatch = manifestMismatch(found.manifest, hostFacts(run));
  if (mismatch) return await setAsideFor(run, mismatch);
  for (const forward of found.manifest.forwards) {
    if (!(await isPortFree(forward.host))) {
      // The snapshot is good; the host is not ready for it. Keep it for a later start.
      throw new WarmvmError('E_PORT_TAKEN', `host port ${forward.host}, which the snapshot forwards to guest port ${forward.guest}, is in use`, {
        hint: `stop what listens on ${forward.host}, or "warmvm start --cold" (the snapshot is kept), or "warmvm reset --snapshot" to capture anew`,
      });
    }
  }
  run.manifest = found.manifest;
  return { status: 'usable' };
}

async function setAsideFor(run: Run, reason: string): Promise<SnapshotChoice> {
  await setAside(run.snapshot, reason);
  return { status: 'setAside', reason };
}
