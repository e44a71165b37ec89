import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { inspectQemuCached } from '../../adapters/qemu/binary.js';
import { parseConfig, parseSnapshotArtifact, MAX_MANIFEST_BYTES } from '../../adapters/snapshot/artifact.js';
import { blobPath, packSnapshot, unpackSnapshot, type TransferProgress } from '../../adapters/snapshot/pack.js';
import { isStoreKey, listSnapshotKeys, readSnapshot, snapshotPaths, type SnapshotPaths, withCaptureLock } from '../../adapters/snapshot/store.js';
import { mismatchError, portableMismatch, pullHead, pullLayers, pushSnapshot, type PulledHead } from '../../adapters/snapshot/transfer.js';
import { type SnapshotManifest, sameCapture } from '../../adapters/snapshot/manifest.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import type { RegistryClient } from '../../adapters/registry/client.js';
import type { RegistryReference } from '../../adapters/registry/reference.js';
import { readSnapshotKey } from '../../adapters/vm/instances.js';
import { onInterrupt } from '../interrupt.js';
import type { Output } from '../output.js';
import { sizeText } from './list.js';

interface Common {
  home: string;
  output: Output;
}

/** Which snapshot a command means: the KEY given, else the one instance `name` last ran from, else the only one in the store. */
async function chooseSnapshot(home: string, key: string | undefined, name: string): Promise<{ paths: SnapshotPaths; manifest: SnapshotManifest }> {
  const root = homePaths(home).snapshots;
  const keys = await listSnapshotKeys(root);
  const chosen = key ?? (await readSnapshotKey(instancePaths(home, name))) ?? (keys.length === 1 ? keys[0] : undefined);
  if (chosen === undefined || !isStoreKey(chosen) || !keys.includes(chosen)) {
    const known = keys.length === 0 ? 'the store is empty: a first "warmvm start" captures one' : `the store holds ${keys.join(', ')}`;
    throw new WarmvmError('E_SNAPSHOT_MISSING', chosen === undefined ? `which snapshot? ${known}` : `there is no snapshot "${chosen}" in ${root}`, {
      hint: `name one as KEY ("warmvm snapshot ls" lists them)${chosen === undefined ? '' : `; ${known}`}`,
    });
  }
  const paths = snapshotPaths(root, chosen);
  const found = await readSnapshot(paths);
  if (found.kind !== 'found') {
    throw new WarmvmError('E_SNAPSHOT_ARTIFACT', `the snapshot ${paths.dir} cannot be read: ${found.kind === 'unreadable' ? found.reason : 'it is gone'}`, {
      hint: 'start an instance of its config to capture it anew',
    });
  }
  return { paths, manifest: found.manifest };
}

/** A transfer's bytes as the output's bar (the result or the error ends it). */
function bytesOf(output: Output): (what: string, done: number, total: number) => void {
  return (what, done, total) => output.progress.bytes(what, done, total);
}

/** An AbortSignal that Ctrl-C fires, and the handler's removal. */
function interruptible(output: Output): { signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  const done = onInterrupt(
    () => {
      output.progress.line('warmvm: interrupted; removing what was half written (Ctrl-C again to force)');
      controller.abort(new Error('interrupted'));
    },
    async () => undefined,
  );
  return { signal: controller.signal, done };
}

/** `warmvm snapshot export FILE [KEY]`: the snapshot and the guest image it boots as an OCI image layout tar. */
export async function snapshotExportCommand(options: Common & { file: string; key: string | undefined; name: string; tag: string }): Promise<number> {
  const { output } = options;
  const { paths, manifest } = await chooseSnapshot(options.home, options.key, options.name);
  const { signal, done } = interruptible(output);
  const progress = bytesOf(output);
  try {
    const packed = await packSnapshot(paths, manifest, { imagesDir: homePaths(options.home).images, layoutRoot: options.home, signal, onProgress: progress });
    const { writeLayoutTar } = await import('../../adapters/oci/layout.js');
    await writeLayoutTar(
      options.file,
      { blobsDir: options.home, manifest: packed.manifest, tag: options.tag },
      { signal, onProgress: (d, t) => progress(`writing ${options.file}`, d, t) },
    );
    const bytes = packed.layers.reduce((sum, layer) => sum + layer.descriptor.size, 0);
    output.result(
      { ok: true, file: options.file, key: paths.key, digest: packed.manifest.digest, tag: options.tag, layers: packed.layers.length, bytes },
      `exported snapshot ${paths.key} to ${options.file} (${packed.layers.length} layers, ${sizeText(bytes)} of blobs, manifest ${packed.manifest.digest.slice(0, 19)}…)`,
    );
    return 0;
  } finally {
    done();
  }
}

/** `warmvm snapshot import FILE`: an exported snapshot put in this home's store, its guest image beside it. */
export async function snapshotImportCommand(options: Common & { file: string }): Promise<number> {
  const { output } = options;
  const { signal, done } = interruptible(output);
  const progress = bytesOf(output);
  try {
    const { readLayoutTar } = await import('../../adapters/oci/layout.js');
    const read = await readLayoutTar(options.file, options.home, { signal, onProgress: (d, t) => progress(`reading ${options.file}`, d, t) });
    const body = await readFile(blobPath(options.home, read.manifest.digest));
    if (body.length > MAX_MANIFEST_BYTES) throw new WarmvmError('E_SNAPSHOT_ARTIFACT', `the manifest in ${options.file} is ${body.length} bytes`, { hint: 'export it again' });
    const { layers, manifest } = parseSnapshotArtifact(body, options.file);
    const config = parseConfig(await readFile(blobPath(options.home, manifest.config.digest)), options.file);
    const head: PulledHead = { digest: read.manifest.digest, config, layers };
    await refuseForeign(options.home, head, options.file, signal);
    const stored = await store(options.home, head, signal, progress);
    output.result(storedJson(stored, head), `imported snapshot ${stored.key} from ${options.file}${stored.note}`);
    return 0;
  } finally {
    done();
  }
}

/** `warmvm snapshot push REF [KEY]`: the snapshot's blobs the registry lacks, then its manifest under REF's tag. */
export async function snapshotPushCommand(options: Common & { ref: string; key: string | undefined; name: string }): Promise<number> {
  const { output } = options;
  const { parseReference } = await import('../../adapters/registry/reference.js');
  const reference = parseReference(options.ref);
  const { paths, manifest } = await chooseSnapshot(options.home, options.key, options.name);
  const { signal, done } = interruptible(output);
  const progress = bytesOf(output);
  try {
    const packed = await packSnapshot(paths, manifest, { imagesDir: homePaths(options.home).images, layoutRoot: options.home, signal, onProgress: progress });
    const client = await registryClient(reference);
    const summary = await pushSnapshot(client, packed, {
      layoutRoot: options.home,
      tag: reference.digest ? undefined : (reference.tag ?? 'latest'),
      signal,
      onProgress: progress,
    });
    output.result(
      { ok: true, ref: reference.text, key: paths.key, ...summary },
      `pushed snapshot ${paths.key} to ${reference.text}: ${summary.sentBlobs} of ${summary.blobs} blobs sent (${sizeText(summary.sentBytes)})${summary.sentBlobs < summary.blobs ? '; the registry had the rest' : ''}, manifest ${summary.digest}`,
    );
    return 0;
  } finally {
    done();
  }
}

/** `warmvm snapshot pull REF`: the config first (refused before any large blob when this host cannot resume it), then the blobs, then the store. */
export async function snapshotPullCommand(options: Common & { ref: string }): Promise<number> {
  const { output } = options;
  const { parseReference } = await import('../../adapters/registry/reference.js');
  const reference = parseReference(options.ref);
  const { signal, done } = interruptible(output);
  const progress = bytesOf(output);
  try {
    const client = await registryClient(reference);
    const head = await pullHead(client, reference.digest ?? reference.tag ?? 'latest', reference.text);
    await refuseForeign(options.home, head, reference.text, signal);
    const summary = await pullLayers(client, head, { layoutRoot: options.home, signal, onProgress: progress });
    const stored = await store(options.home, head, signal, progress);
    output.result(
      { ...storedJson(stored, head), ref: reference.text, receivedBlobs: summary.sentBlobs, receivedBytes: summary.sentBytes },
      `pulled snapshot ${stored.key} from ${reference.text}: ${summary.sentBlobs} of ${summary.blobs} blobs received (${sizeText(summary.sentBytes)})${stored.note}`,
    );
    return 0;
  } finally {
    done();
  }
}

async function registryClient(reference: RegistryReference): Promise<RegistryClient> {
  const { RegistryClient } = await import('../../adapters/registry/client.js');
  return new RegistryClient(reference);
}

/** A snapshot from another QEMU, machine type or accelerator, refused before anything large is read. */
async function refuseForeign(home: string, head: PulledHead, where: string, signal: AbortSignal): Promise<void> {
  const qemu = await inspectQemuCached(join(home, 'qemu-info.json'), undefined, signal);
  const reason = portableMismatch(head.config.manifest, { qemuVersion: qemu.version.text, machineType: qemu.machineType, accelerators: qemu.accelerators });
  if (reason !== undefined) throw mismatchError(where, reason);
}

interface Stored {
  key: string;
  dir: string;
  imagesInstalled: string[];
  replaced: boolean;
  note: string;
}

/** Unpacked into the store under the config's capture lock, unless the store holds the same snapshot already. */
async function store(home: string, head: PulledHead, signal: AbortSignal, onProgress: TransferProgress): Promise<Stored> {
  const { manifest } = head.config;
  const paths = snapshotPaths(homePaths(home).snapshots, manifest.specHash);
  const outcome = await withCaptureLock(paths, async (): Promise<Stored> => {
    const present = await readSnapshot(paths);
    if (present.kind === 'found' && sameCapture(present.manifest, manifest)) {
      return { key: paths.key, dir: paths.dir, imagesInstalled: [], replaced: false, note: ': the store holds it already' };
    }
    const unpacked = await unpackSnapshot({ layoutRoot: home, config: head.config, layers: head.layers }, { paths, imagesDir: homePaths(home).images, signal, onProgress });
    const images = unpacked.imagesInstalled.length === 0 ? '' : `, guest image ${unpacked.imagesInstalled.join(', ')} installed`;
    return { key: paths.key, dir: paths.dir, imagesInstalled: unpacked.imagesInstalled, replaced: present.kind !== 'missing', note: ` into ${paths.dir}${images}` };
  });
  if ('holder' in outcome) {
    throw new WarmvmError('E_CAPTURE_BUSY', `another warmvm (pid ${outcome.holder}) is capturing or storing a snapshot of config ${paths.key} right now`, {
      hint: 'wait for it to finish, then run this again',
    });
  }
  return outcome.done;
}

function storedJson(stored: Stored, head: PulledHead): Record<string, unknown> {
  const { manifest } = head.config;
  return {
    ok: true,
    key: stored.key,
    dir: stored.dir,
    digest: head.digest,
    replaced: stored.replaced,
    imagesInstalled: stored.imagesInstalled,
    capturedBy: manifest.capturedBy,
    createdAt: manifest.createdAt,
    qemuVersion: manifest.qemuVersion,
    machineType: manifest.machineType,
    accel: manifest.accel,
    cpuModel: manifest.cpuModel,
  };
}
