import { join } from 'node:path';
import { builtImageDir } from '../adapters/guest/boot-files.js';
import { homePaths } from '../adapters/instance/paths.js';
import { fileExists } from '../adapters/support/file-exists.js';
import { manifestMismatch } from '../adapters/snapshot/manifest.js';
import { installGuestImages, type TransferProgress, unpackSnapshot } from '../adapters/snapshot/pack.js';
import { RegistryClient } from '../adapters/registry/client.js';
import { parseReference } from '../adapters/registry/reference.js';
import { mismatchError, portableMismatch, pullHead, pullLayers } from '../adapters/snapshot/transfer.js';
import { describeError, WarmvmError } from '../adapters/support/errors.js';
import type { PullResult } from '../machines/start.js';
import { releaseCaptureLock, takeCaptureLock } from './capture-lock.js';
import { judge } from './judge.js';
import { hostFacts } from './vm.js';
import { need, type Run } from './run.js';

/** One bar per file a pull moves. */
function pullProgress(run: Run): TransferProgress {
  return (what, done, total) => run.progress.bytes(`pull: ${what}`, done, total);
}

/** The config's registry and what its reference names: the manifest and config, read before anything large. */
async function registryHead(run: Run, ref: string) {
  const reference = parseReference(ref);
  const client = new RegistryClient(reference, { logger: run.logger });
  return { reference, client, head: await pullHead(client, reference.digest ?? reference.tag ?? 'latest', reference.text) };
}

/**
 * Before the image step builds a guest warmvm makes (the Debian profile takes minutes): when the
 * config names a registry and this home lacks the guest, its files are taken from the snapshot
 * there, if that snapshot boots the very image this host would build. Anything amiss only means
 * the image is built as usual, with a line saying why.
 */
export async function pullGuestImage(run: Run, signal: AbortSignal): Promise<void> {
  const ref = run.spec.snapshotPull;
  const imagesDir = homePaths(run.home).images;
  const dir = ref === undefined ? undefined : await builtImageDir(run.spec.boot, { imagesDir, signal, logger: run.logger });
  if (ref === undefined || dir === undefined || (await fileExists(join(imagesDir, dir)))) return;
  try {
    const { reference, client, head } = await registryHead(run, ref);
    const qemu = need(run.qemu, 'QEMU');
    const mismatch = portableMismatch(head.config.manifest, { qemuVersion: qemu.version.text, machineType: qemu.machineType, accelerators: qemu.accelerators });
    if (mismatch !== undefined) throw mismatchError(reference.text, mismatch);
    const layers = head.layers.filter((layer) => layer.role === 'image' && layer.imageDir === dir);
    if (layers.length === 0) throw new WarmvmError('E_SNAPSHOT_MISMATCH', `the snapshot at ${reference.text} boots another guest image than this host's ${dir}`);
    run.progress.line(`  image: ${dir} from ${reference.text}`);
    await pullLayers(client, { ...head, layers }, { layoutRoot: run.home, signal, onProgress: pullProgress(run) });
    await installGuestImages(run.home, layers, imagesDir, signal, pullProgress(run));
  } catch (error) {
    if (signal.aborted) throw error;
    run.progress.line(`  image: not taken from ${ref} (${describeError(error).split('\n').join('; ')}); ${run.spec.boot.kind === 'url' ? 'downloading' : 'building'} it`);
  }
}

/**
 * The config's snapshot from its registry, under the capture lock (two starts of one config
 * never both pull: the other waits, then resumes what this one stored). The small manifest and
 * config come first, and a snapshot this host cannot resume is refused before any large blob.
 * Never throws for what a person can fix: the reason goes back, and the cold boot runs instead.
 */
export async function pullSnapshot(run: Run, signal: AbortSignal): Promise<PullResult> {
  const ref = need(run.spec.snapshotPull, 'the snapshot pull reference');
  const snapshot = need(run.snapshot, 'the snapshot');
  // Held already when this start will capture after a failed pull; taken here otherwise, and let go on every way out.
  const heldBefore = run.captureLock !== undefined;
  const taken = await takeCaptureLock(run);
  if ('holder' in taken) return { status: 'failed', reason: `another start (pid ${taken.holder}) is replacing this config's snapshot` };
  try {
    const { reference, client, head } = await registryHead(run, ref);
    const mismatch = manifestMismatch(head.config.manifest, hostFacts(run));
    if (mismatch !== undefined) throw mismatchError(reference.text, mismatch);
    run.progress.line(`  pull: ${reference.text} (${head.digest.slice(0, 19)}…), ${head.layers.length} layers`);
    const onProgress = pullProgress(run);
    const home = run.home;
    const received = await pullLayers(client, head, { layoutRoot: home, signal, onProgress });
    await unpackSnapshot({ layoutRoot: home, config: head.config, layers: head.layers }, { paths: snapshot, imagesDir: homePaths(home).images, signal, onProgress });
    const verdict = await judge(run);
    if (!verdict.usable)
      throw new WarmvmError('E_SNAPSHOT_MISMATCH', `the snapshot pulled from ${reference.text} is not usable: ${verdict.reason ?? 'it is missing from the store'}`);
    run.progress.done(`pull: ${received.sentBlobs} of ${received.blobs} blobs received (${(received.sentBytes / 1e6).toFixed(1)} MB)`);
    await releaseCaptureLock(run);
    return { status: 'usable', failuresInARow: verdict.usable.failuresInARow, digest: head.digest };
  } catch (error) {
    if (!heldBefore) await releaseCaptureLock(run);
    if (signal.aborted) throw error;
    return { status: 'failed', reason: describeError(error).split('\n').join('; ') };
  }
}
