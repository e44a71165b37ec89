import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { OCI_MANIFEST_MEDIA_TYPE, type Descriptor } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import { tryLock, type InstanceLock } from '../instance/lock.js';
import { WarmvmError } from '../support/errors.js';
import { sleep } from '../support/sleep.js';
import { MAX_CONFIG_BYTES, type PackedLayer, parseConfig, parseSnapshotArtifact, type SnapshotArtifactConfig } from './artifact.js';
import type { SnapshotManifest } from './manifest.js';
import { blobPath, type PackedSnapshot, type TransferProgress } from './pack.js';

/** What a transfer moved: how many blobs and bytes went over the wire, and how many the other side had already. */
export interface TransferSummary {
  digest: string;
  blobs: number;
  sentBlobs: number;
  sentBytes: number;
  totalBytes: number;
}

/** Every blob of a packed snapshot that the registry lacks, then the manifest under `tag` (or only by digest). */
export async function pushSnapshot(
  client: RegistryClient,
  packed: PackedSnapshot,
  options: { layoutRoot: string; tag: string | undefined; signal?: AbortSignal; onProgress?: TransferProgress },
): Promise<TransferSummary> {
  const blobs: { descriptor: Descriptor; what: string }[] = [
    ...packed.layers.map((layer) => ({ descriptor: layer.descriptor, what: layer.imageDir ? `${layer.imageDir}/${layer.name}` : layer.name })),
    { descriptor: packed.configBlob, what: 'config' },
  ];
  const summary: TransferSummary = { digest: packed.manifest.digest, blobs: blobs.length, sentBlobs: 0, sentBytes: 0, totalBytes: 0 };
  const seen = new Set<string>();
  for (const { descriptor, what } of blobs) {
    if (seen.has(descriptor.digest)) continue;
    seen.add(descriptor.digest);
    summary.totalBytes += descriptor.size;
    const pushed = await client.pushBlob(blobPath(options.layoutRoot, descriptor.digest), descriptor.digest, descriptor.size, {
      signal: options.signal,
      onProgress: options.onProgress && ((done, total) => options.onProgress?.(`sending ${what}`, done, total)),
    });
    if (pushed.sent) {
      summary.sentBlobs += 1;
      summary.sentBytes += descriptor.size;
    }
  }
  await client.putManifest(options.tag ?? packed.manifest.digest, packed.manifestBody, OCI_MANIFEST_MEDIA_TYPE);
  return summary;
}

/** The small parts of a pulled snapshot, read before any large blob: what it is and what it needs. */
export interface PulledHead {
  digest: string;
  config: SnapshotArtifactConfig;
  layers: PackedLayer[];
}

/** The manifest and the config of `reference`, verified by digest: enough to refuse a snapshot before downloading it. */
export async function pullHead(client: RegistryClient, reference: string, where: string): Promise<PulledHead> {
  const found = await client.getManifest(reference);
  const { manifest, layers } = parseSnapshotArtifact(found.body, where);
  const config = parseConfig(await client.getBlob(manifest.config.digest, MAX_CONFIG_BYTES), where);
  return { digest: found.digest, config, layers };
}

/**
 * Every layer into the blob folder, each verified by digest on the way in; one already there is
 * not downloaded again, and one cut off continues where it stopped (the client's `.partial`).
 */
export async function pullLayers(
  client: RegistryClient,
  head: PulledHead,
  options: { layoutRoot: string; signal?: AbortSignal; onProgress?: TransferProgress },
): Promise<TransferSummary> {
  const summary: TransferSummary = { digest: head.digest, blobs: head.layers.length, sentBlobs: 0, sentBytes: 0, totalBytes: 0 };
  const seen = new Set<string>();
  await mkdir(join(options.layoutRoot, 'blobs', 'sha256'), { recursive: true });
  for (const layer of head.layers) {
    const { digest, size } = layer.descriptor;
    if (seen.has(digest)) continue;
    seen.add(digest);
    summary.totalBytes += size;
    const dest = blobPath(options.layoutRoot, digest);
    const what = layer.imageDir ? `${layer.imageDir}/${layer.name}` : layer.name;
    const lock = await blobLock(dest, options.signal);
    try {
      // A blob in the folder was verified when it was stored (pulled, imported or packed here).
      if ((await stat(dest).catch(() => undefined))?.size === size) continue;
      await client.pullBlob(digest, size, dest, {
        signal: options.signal,
        onProgress: options.onProgress && ((done, total) => options.onProgress?.(`receiving ${what}`, done, total)),
      });
    } finally {
      await lock.release();
    }
    summary.sentBlobs += 1;
    summary.sentBytes += size;
  }
  return summary;
}

/** How often a pull waiting for another's download of the same blob looks again. */
const BLOB_LOCK_POLL_MS = 200;

/**
 * One download per blob at a time in a blob folder: pulls of two configs that share a layer (their
 * guest image) would otherwise write one `.partial` at once. The other waits, then finds it whole.
 */
async function blobLock(dest: string, signal: AbortSignal | undefined): Promise<InstanceLock> {
  for (;;) {
    const taken = await tryLock(`${dest}.lock`);
    if ('lock' in taken) return taken.lock;
    await sleep(BLOB_LOCK_POLL_MS, signal);
  }
}

/** What any host must share with the capturing one, config aside: the same QEMU, machine type, and an accelerator it has. */
export interface PortableHost {
  qemuVersion: string;
  machineType: string;
  accelerators: string[];
}

/** Why this host cannot resume the snapshot whatever its config, or undefined. */
export function portableMismatch(manifest: SnapshotManifest, host: PortableHost): string | undefined {
  if (manifest.qemuVersion !== host.qemuVersion) return `it was captured with QEMU ${manifest.qemuVersion}, this host has ${host.qemuVersion}`;
  if (manifest.machineType !== host.machineType) return `its machine type is ${manifest.machineType}, this host's QEMU makes ${host.machineType}`;
  if (!host.accelerators.includes(manifest.accel))
    return `it was captured under ${manifest.accel}, which this host's QEMU does not offer (it has ${host.accelerators.length === 0 ? 'none' : host.accelerators.join(', ')})`;
  return undefined;
}

/** The refusal of a snapshot this host cannot resume, before any large blob was fetched. */
export function mismatchError(where: string, reason: string): WarmvmError {
  return new WarmvmError('E_SNAPSHOT_MISMATCH', `${where} cannot be resumed on this host: ${reason}`, {
    hint: 'capture on this host instead (a start without a snapshot does), or pull a snapshot captured on a host with the same QEMU, machine type, accelerator and CPU model',
  });
}
