import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, link, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { compressFile, decompressFile, zstdWouldNotShrink } from '../oci/zstd-file.js';
import { blobRelativePath, type Descriptor, type Digest } from '../oci/types.js';
import { readBackingFile } from '../qemu/qcow2-header.js';
import { rebaseOverlay } from '../qemu/overlay.js';
import { syncDir, syncFile, writeFileDurably } from '../support/durable.js';
import { WarmvmError, throwIfAborted } from '../support/errors.js';
import { fileExists } from '../support/file-exists.js';
import {
  ARTIFACT_FORMAT,
  type DiskBacking,
  imageManifestFor,
  layerDescriptor,
  type LayerEncoding,
  layerEncoding,
  type LayerRole,
  type PackedLayer,
  type SnapshotArtifactConfig,
  serializeConfig,
} from './artifact.js';
import { chunkChecksum, fileChecksum } from './checksum.js';
import type { RecordedFile, SnapshotManifest } from './manifest.js';
import { sealedManifest } from './seal.js';
import { commitCapture, createCaptureDir, SNAPSHOT_FILE_MODE, type SnapshotPaths } from './store.js';
import { expectChecksum, recordVerified, verifyBeforeLaunch } from './verify.js';

/** Reports the bytes of one file done so far, as it is compressed, sent, received or unpacked. */
export type TransferProgress = (what: string, doneBytes: number, totalBytes: number) => void;

/** A snapshot packed: the image manifest's descriptor (its blob and every one it names are in the blob folder) and its layers. */
export interface PackedSnapshot {
  manifest: Descriptor;
  manifestBody: Buffer;
  config: SnapshotArtifactConfig;
  /** The config blob's descriptor: pushed with the layers. */
  configBlob: Descriptor;
  layers: PackedLayer[];
}

/** `<home>/blobs/sha256/<hex>`: where a blob lives in a folder laid out like an OCI image layout's root. */
export function blobPath(layoutRoot: string, digest: Digest): string {
  return join(layoutRoot, blobRelativePath(digest));
}

/**
 * Compressed once: the blob of each file packed before, by the file's checksum (a snapshot's
 * files never change) or its inode stamp (an image's files are replaced, never written).
 */
const PACKED_INDEX = 'packed';

/**
 * The snapshot's files, and the guest image files a resume on another host needs, as zstd blobs
 * in `layoutRoot/blobs/sha256/`, plus its config and image manifest blobs. Checked first: a
 * damaged snapshot is never packed.
 */
export async function packSnapshot(
  paths: SnapshotPaths,
  found: SnapshotManifest,
  options: { imagesDir: string; layoutRoot: string; signal?: AbortSignal; onProgress?: TransferProgress },
): Promise<PackedSnapshot> {
  await verifyBeforeLaunch(paths, found, { signal: options.signal });
  // What travels carries every checksum: one the seal has not recorded yet is recorded first.
  const { manifest, memoryChecksum } = await sealedManifest(paths, found, options.signal);
  await mkdir(join(options.layoutRoot, 'blobs', 'sha256'), { recursive: true });
  const layers: PackedLayer[] = [];
  const add = async (role: LayerRole, file: string, name: string, imageDir: string | undefined, cacheKey: string) => {
    const blob = await packFile(file, cacheKey, name, options);
    layers.push({ role, name, imageDir, descriptor: layerDescriptor(role, name, imageDir, blob) });
  };
  await add('memory', paths.memory, manifest.files.memory.name, undefined, memoryChecksum);
  await add('state', paths.state, manifest.files.state.name, undefined, manifest.files.state.checksum);
  let diskBacking: DiskBacking | undefined;
  if (manifest.files.disk) {
    await add('disk', paths.disk, manifest.files.disk.name, undefined, manifest.files.disk.checksum);
    diskBacking = await backingOf(paths.disk, options.imagesDir);
  }
  const image = typeof manifest.spec.image === 'string' ? manifest.spec.image : undefined;
  for (const file of await imageFiles(options.imagesDir, image)) {
    const found = await stat(file.path);
    await add('image', file.path, file.name, file.dir, `image:${found.ino}:${found.size}:${found.mtimeMs}`);
  }
  const config: SnapshotArtifactConfig = { artifactFormat: ARTIFACT_FORMAT, manifest, diskBacking };
  const configBlob = await writeBlob(options.layoutRoot, serializeConfig(config));
  const imageManifest = imageManifestFor(
    configBlob,
    layers.map((layer) => layer.descriptor),
    manifest.createdAt,
  );
  const manifestBody = Buffer.from(JSON.stringify(imageManifest));
  const manifestBlob = await writeBlob(options.layoutRoot, manifestBody);
  return {
    manifest: { mediaType: imageManifest.mediaType, artifactType: imageManifest.artifactType, ...manifestBlob },
    manifestBody,
    config,
    configBlob: imageManifest.config,
    layers,
  };
}

/**
 * A pulled or imported snapshot (every blob present and verified by digest in `layoutRoot`) put
 * in the store: the guest image files it boots installed where they are missing, its files
 * unpacked into a capture folder, the frozen disk rebased onto this home's image, every file
 * checksummed against the manifest, then published by the same rename as a capture. The caller
 * holds the config's capture lock.
 */
export async function unpackSnapshot(
  input: { layoutRoot: string; config: SnapshotArtifactConfig; layers: PackedLayer[] },
  target: { paths: SnapshotPaths; imagesDir: string; signal?: AbortSignal; onProgress?: TransferProgress },
): Promise<{ manifest: SnapshotManifest; imagesInstalled: string[] }> {
  const { config, layers, layoutRoot } = input;
  const { signal, onProgress } = target;
  const imagesInstalled = await installGuestImages(layoutRoot, layers, target.imagesDir, signal, onProgress);
  const dir = await createCaptureDir(target.paths);
  try {
    const files = config.manifest.files;
    // What travelled was checked by digest; each file's checksum, taken as it is unpacked, proves it is what was captured.
    const unpack = async (role: LayerRole, file: RecordedFile) => {
      const layer = layers.find((candidate) => candidate.role === role);
      if (!layer) throw missingLayer(role);
      const checksum = await unpackLayer(layoutRoot, layer, join(dir, file.name), {
        signal,
        expectedBytes: file.bytes,
        onProgress: onProgress && ((done, total) => onProgress(`unpacking ${file.name}`, done, total)),
        checksum: true,
      });
      expectChecksum(file, checksum ?? '', dir);
    };
    await unpack('memory', files.memory);
    await unpack('state', files.state);
    let manifest = config.manifest;
    if (files.disk) {
      await unpack('disk', files.disk);
      // Its header now names this home's image: the manifest records the checksum it has now.
      manifest = await rebaseFrozenDisk(join(dir, files.disk.name), manifest, config.diskBacking, target.imagesDir, signal);
    }
    for (const name of [files.memory.name, files.state.name, ...(files.disk ? [files.disk.name] : [])]) await chmod(join(dir, name), SNAPSHOT_FILE_MODE);
    await writeFileDurably(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await recordVerified({ dir, verified: join(dir, 'verified.json') }, manifest);
    throwIfAborted(signal, 'unpacking the snapshot');
    await commitCapture(dir, target.paths);
    return { manifest, imagesInstalled };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A small blob (config, manifest) written under its digest. */
export async function writeBlob(layoutRoot: string, body: Buffer): Promise<{ digest: Digest; size: number }> {
  const digest: Digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const path = blobPath(layoutRoot, digest);
  await mkdir(dirname(path), { recursive: true });
  // JSON text: its UTF-8 bytes are the ones hashed.
  if (!(await fileExists(path))) await writeFileDurably(path, body.toString('utf8'));
  return { digest, size: body.length };
}

async function packFile(file: string, cacheKey: string, name: string, options: { layoutRoot: string; signal?: AbortSignal; onProgress?: TransferProgress }): Promise<PackedBlob> {
  const index = join(options.layoutRoot, 'blobs', PACKED_INDEX, `${createHash('sha256').update(cacheKey).digest('hex').slice(0, 32)}.json`);
  const cached = await readPacked(index);
  if (cached && (await stat(blobPath(options.layoutRoot, cached.digest)).catch(() => undefined))?.size === cached.size) return cached;
  const temp = join(options.layoutRoot, 'blobs', `.pack-${process.pid}-${name}`);
  try {
    let blob: PackedBlob;
    if (await zstdWouldNotShrink(file, options.signal)) {
      blob = { ...(await linkRaw(file, temp, options.signal, options.onProgress && ((done, total) => options.onProgress?.(`hashing ${name}`, done, total)))), encoding: 'raw' };
    } else {
      const compressed = await compressFile(file, temp, {
        signal: options.signal,
        onProgress: options.onProgress && ((done, total) => options.onProgress?.(`compressing ${name}`, done, total)),
      });
      blob = { digest: compressed.digest, size: compressed.size, encoding: 'zstd' };
    }
    await rename(temp, blobPath(options.layoutRoot, blob.digest));
    await syncDir(join(options.layoutRoot, 'blobs', 'sha256'));
    await mkdir(dirname(index), { recursive: true });
    await writeFileDurably(index, `${JSON.stringify(blob)}\n`);
    return blob;
  } finally {
    await rm(temp, { force: true });
  }
}

interface PackedBlob {
  digest: Digest;
  size: number;
  encoding: LayerEncoding;
}

/**
 * A file that travels as it is, as a blob: `temp` is a second name for it (a snapshot's and an
 * image's files are never written, only replaced), or a copy where the two cannot share an
 * inode; its digest is the sha256 of the file.
 */
async function linkRaw(
  file: string,
  temp: string,
  signal: AbortSignal | undefined,
  onProgress: ((done: number, total: number) => void) | undefined,
): Promise<{ digest: Digest; size: number }> {
  await rm(temp, { force: true });
  await linkOrCopy(file, temp);
  const hash = createHash('sha256');
  const size = (await stat(temp)).size;
  let done = 0;
  for await (const chunk of createReadStream(temp, { highWaterMark: 4 << 20, signal }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    done += chunk.length;
    onProgress?.(done, size);
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** A hard link, or a flushed copy where a link cannot be made (another file system, a file system without links). */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
    await syncFile(to);
  }
}

/**
 * A layer's file at `dest`, from its blob (present and verified by digest): a zstd layer is
 * unpacked, a raw one is the blob itself under a second name (nothing writes either), put there
 * by a rename so that `dest` is whole or absent.
 */
async function unpackLayer(
  layoutRoot: string,
  layer: PackedLayer,
  dest: string,
  options: { signal?: AbortSignal; expectedBytes?: number; onProgress?: (done: number, total: number) => void; checksum?: boolean },
): Promise<string | undefined> {
  const blob = blobPath(layoutRoot, layer.descriptor.digest);
  if (layerEncoding(layer) === 'zstd') {
    const checksum = options.checksum ? await chunkChecksum() : undefined;
    await decompressFile(blob, dest, { ...options, onChunk: checksum && ((chunk, zero) => checksum.add(chunk, zero)) });
    return checksum?.finish();
  }
  const size = (await stat(blob)).size;
  if (options.expectedBytes !== undefined && size !== options.expectedBytes) {
    throw new WarmvmError('E_OCI_BLOB', `the blob ${blob} holds ${size} bytes, where ${options.expectedBytes} were expected`, {
      hint: 'it is not the file its snapshot names: delete it, then pull or import the snapshot again',
    });
  }
  throwIfAborted(options.signal, `unpacking ${layer.name}`);
  const temp = `${dest}.tmp-${process.pid}`;
  try {
    await rm(temp, { force: true });
    await linkOrCopy(blob, temp);
    await rename(temp, dest);
  } finally {
    await rm(temp, { force: true });
  }
  await syncDir(dirname(dest));
  options.onProgress?.(size, size);
  return options.checksum ? (await fileChecksum(dest, { signal: options.signal })).checksum : undefined;
}

async function readPacked(index: string): Promise<PackedBlob | undefined> {
  try {
    const value = JSON.parse(await readFile(index, 'utf8')) as { digest: Digest; size: number; encoding?: LayerEncoding };
    // Written before raw layers existed: every blob then was zstd.
    return typeof value.digest === 'string' && typeof value.size === 'number'
      ? { digest: value.digest, size: value.size, encoding: value.encoding === 'raw' ? 'raw' : 'zstd' }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Where the frozen disk's backing file is, named so that another home can find its own copy. */
async function backingOf(disk: string, imagesDir: string): Promise<DiskBacking | undefined> {
  const backing = await readBackingFile(disk);
  if (backing === undefined) return undefined;
  const inside = relative(imagesDir, backing);
  const parts = inside.split(sep);
  return !inside.startsWith('..') && parts.length === 2 ? { imageDir: parts[0] as string, file: parts[1] as string } : { path: backing };
}

/** Files of a guest image that no resume reads: the Debian profile's unprovisioned disk, 40% of its bytes. */
const NOT_NEEDED_TO_RESUME = new Set(['base.qcow2']);

/** The files of the guest image a snapshot boots, when warmvm built it (`images/<image>/`); a user's own image stays where it is. */
async function imageFiles(imagesDir: string, image: string | undefined): Promise<{ dir: string; name: string; path: string }[]> {
  if (image === undefined || image.includes('/') || image.startsWith('.')) return [];
  const dir = join(imagesDir, image);
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() && !NOT_NEEDED_TO_RESUME.has(entry.name))
    .map((entry) => ({ dir: image, name: entry.name, path: join(dir, entry.name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Each guest image folder of these layers that this home lacks, unpacked beside and renamed into place whole. */
export async function installGuestImages(
  layoutRoot: string,
  layers: PackedLayer[],
  imagesDir: string,
  signal: AbortSignal | undefined,
  onProgress: TransferProgress | undefined,
): Promise<string[]> {
  const byDir = new Map<string, PackedLayer[]>();
  for (const layer of layers) if (layer.role === 'image' && layer.imageDir) byDir.set(layer.imageDir, [...(byDir.get(layer.imageDir) ?? []), layer]);
  const installed: string[] = [];
  for (const [name, files] of byDir) {
    const dir = join(imagesDir, name);
    if (await fileExists(dir)) continue;
    const staging = join(imagesDir, `.import-${process.pid}-${name}`);
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    try {
      for (const file of files) {
        await unpackLayer(layoutRoot, file, join(staging, file.name), {
          signal,
          onProgress: onProgress && ((done, total) => onProgress(`unpacking ${name}/${file.name}`, done, total)),
        });
      }
      await syncDir(staging);
      await rename(staging, dir);
      await syncDir(imagesDir);
      installed.push(dir);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      // Another import or build put it there meanwhile: that one is whole.
      if (!(await fileExists(dir))) throw error;
    }
  }
  return installed;
}

/** The frozen disk pointed at this home's copy of its backing file; the manifest's record of it follows the new header. */
async function rebaseFrozenDisk(
  disk: string,
  manifest: SnapshotManifest,
  backing: DiskBacking | undefined,
  imagesDir: string,
  signal: AbortSignal | undefined,
): Promise<SnapshotManifest> {
  if (backing === undefined || manifest.files.disk === undefined) return manifest;
  const base = 'path' in backing ? backing.path : join(imagesDir, backing.imageDir, backing.file);
  if (!(await fileExists(base))) {
    throw new WarmvmError('E_SNAPSHOT_BACKING', `the snapshot's disk is an overlay over ${base}, which this host does not have`, {
      hint: 'path' in backing ? `copy that image to ${base} (the config names it there), then pull again` : 'push the snapshot again from a warmvm that packs its guest image',
    });
  }
  await rebaseOverlay({ overlay: disk, base, format: 'qcow2', signal });
  const sum = await fileChecksum(disk, { signal });
  return { ...manifest, files: { ...manifest.files, disk: { ...manifest.files.disk, bytes: sum.bytes, checksum: sum.checksum } } };
}

function missingLayer(role: LayerRole): WarmvmError {
  return new WarmvmError('E_SNAPSHOT_ARTIFACT', `the snapshot has no ${role} layer`, { hint: 'push or export it again with this warmvm' });
}
