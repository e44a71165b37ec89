import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureUrlImage } from '../../../adapters/image/cache.js';
import { urlImageDir, urlImageFile } from '../../../adapters/image/names.js';
import { compressFile } from '../../../adapters/oci/zstd-file.js';
import { readBackingFile } from '../../../adapters/qemu/qcow2-header.js';
import { LAYER_MEDIA_TYPE, parseConfig, parseSnapshotArtifact, RAW_LAYER_MEDIA_TYPE, SNAPSHOT_ARTIFACT_TYPE, serializeConfig } from '../../../adapters/snapshot/artifact.js';
import { fileChecksum } from '../../../adapters/snapshot/checksum.js';
import { parseManifest, type SnapshotManifest } from '../../../adapters/snapshot/manifest.js';
import { blobPath, type PackedSnapshot, packSnapshot, unpackSnapshot } from '../../../adapters/snapshot/pack.js';
import { FROZEN_DISK, listCaptureDirs, MEMORY_FILE, SNAPSHOT_FILE_MODE, STATE_FILE, snapshotPaths, type SnapshotPaths } from '../../../adapters/snapshot/store.js';
import { verifyBeforeLaunch, verifyInFull } from '../../../adapters/snapshot/verify.js';
import {
  backingFilename,
  exists,
  MEMORY_APPARENT,
  MEMORY_DATA_BYTES,
  makeBaseDisk,
  makeHome,
  makeImage,
  makeOverlay,
  makeSnapshot,
  qemuImg,
  run,
  sha256File,
  type TestHome,
  treeDigests,
  usePackTemp,
} from '../../helpers/snapshot-home.js';

const temp = usePackTemp();
const KEY = '0123456789abcdef';
const IMAGE = 'demo-abc';

/** Two homes side by side: `a` holds a snapshot of a demo guest and its image, `b` is empty. */
async function twoHomes(): Promise<{ root: string; a: TestHome; b: TestHome; paths: SnapshotPaths; manifest: SnapshotManifest; image: Record<string, Buffer> }> {
  const root = await temp();
  const a = await makeHome(root, 'a');
  const b = await makeHome(root, 'b');
  const image = await makeImage(a, IMAGE);
  const { paths, manifest } = await makeSnapshot(a, KEY, { image: IMAGE });
  return { root, a, b, paths, manifest, image };
}

async function pack(home: TestHome, paths: SnapshotPaths, manifest: SnapshotManifest): Promise<PackedSnapshot> {
  return packSnapshot(paths, manifest, { imagesDir: home.images, layoutRoot: home.home });
}

/** `packed` read back as an importer would: the manifest and config parsed from their blobs. */
async function imported(layoutRoot: string, packed: PackedSnapshot): Promise<Parameters<typeof unpackSnapshot>[0]> {
  const { manifest, layers } = parseSnapshotArtifact(await readFile(blobPath(layoutRoot, packed.manifest.digest)), 'the layout');
  const config = parseConfig(await readFile(blobPath(layoutRoot, manifest.config.digest)), 'the layout');
  return { layoutRoot, config, layers };
}

async function unpackInto(home: TestHome, input: Parameters<typeof unpackSnapshot>[0], key = KEY) {
  return unpackSnapshot(input, { paths: snapshotPaths(home.snapshots, key), imagesDir: home.images });
}

async function zstdDecompress(blob: string): Promise<Buffer> {
  return (await run('zstd', ['-d', '-c', '-q', blob], { encoding: 'buffer', maxBuffer: 256 << 20 })).stdout;
}

/** Nothing a failed unpack may leave in a home's store: a capture folder, a temp file, the snapshot. */
async function storeLeftovers(home: TestHome, key = KEY): Promise<string[]> {
  return [...(await listCaptureDirs(home.snapshots)), ...((await exists(join(home.snapshots, key))) ? [key] : [])];
}

describe('packSnapshot', () => {
  it('packs each file as a zstd blob named by the sha256 of its bytes, with config and manifest blobs', async () => {
    const { a, paths, manifest, image } = await twoHomes();
    const packed = await pack(a, paths, manifest);

    expect(packed.layers.map(({ role, name, imageDir }) => [role, name, imageDir])).toEqual([
      ['memory', MEMORY_FILE, undefined],
      ['state', STATE_FILE, undefined],
      ['image', 'cmdline.txt', IMAGE],
      ['image', 'initrd.img', IMAGE],
      ['image', 'vmlinuz', IMAGE],
    ]);
    for (const layer of [...packed.layers.map((l) => l.descriptor), packed.configBlob, packed.manifest]) {
      const path = blobPath(a.home, layer.digest);
      expect(path).toBe(join(a.home, 'blobs', 'sha256', layer.digest.slice('sha256:'.length)));
      expect(await sha256File(path)).toBe(layer.digest);
      expect((await stat(path)).size).toBe(layer.size);
    }
    // The holes cost nearly nothing: the memory blob is about its data (part of it compressible).
    const memoryBlob = packed.layers[0]?.descriptor.size ?? 0;
    expect(memoryBlob).toBeLessThan(MEMORY_DATA_BYTES + (1 << 20));

    expect(packed.config).toEqual({ artifactFormat: 2, manifest, diskBacking: undefined });
    expect(await readFile(blobPath(a.home, packed.configBlob.digest))).toEqual(serializeConfig(packed.config));
    expect(parseConfig(await readFile(blobPath(a.home, packed.configBlob.digest)), 'x')).toEqual(packed.config);
    expect(await readFile(blobPath(a.home, packed.manifest.digest))).toEqual(packed.manifestBody);
    expect(packed.manifest).toMatchObject({ artifactType: SNAPSHOT_ARTIFACT_TYPE, size: packed.manifestBody.length });
    const read = parseSnapshotArtifact(packed.manifestBody, 'x');
    expect(read.layers).toEqual(packed.layers);
    expect(read.manifest.config).toEqual(packed.configBlob);
    expect(Object.keys(image).sort()).toEqual(packed.layers.filter((l) => l.role === 'image').map((l) => l.name));
    // Nothing but blobs and the pack index: no temp file left behind.
    expect((await readdir(join(a.home, 'blobs'))).sort()).toEqual(['packed', 'sha256']);
  });

  it('writes standard zstd: `zstd -d` gives back mem.raw, state.raw and each image file byte for byte', async () => {
    const { a, paths, manifest, image } = await twoHomes();
    const packed = await pack(a, paths, manifest);
    const blob = (name: string) => blobPath(a.home, packed.layers.find((layer) => layer.name === name)?.descriptor.digest ?? 'sha256:missing');
    const memory = await zstdDecompress(blob(MEMORY_FILE));
    expect(memory.length).toBe(MEMORY_APPARENT);
    expect(memory.equals(await readFile(paths.memory))).toBe(true);
    expect((await zstdDecompress(blob(STATE_FILE))).equals(await readFile(paths.state))).toBe(true);
    for (const [name, bytes] of Object.entries(image)) expect((await zstdDecompress(blob(name))).equals(bytes)).toBe(true);
  });

  it('a second pack reuses every blob packed before, by the pack index, without compressing again', async () => {
    const { a, paths, manifest } = await twoHomes();
    const first = await pack(a, paths, manifest);
    const stamps = async () =>
      Promise.all(
        first.layers.map(async (layer) => {
          const found = await stat(blobPath(a.home, layer.descriptor.digest));
          return { ino: found.ino, mtimeMs: found.mtimeMs };
        }),
      );
    const before = await stamps();
    expect((await readdir(join(a.home, 'blobs', 'packed'))).length).toBe(first.layers.length);
    const second = await pack(a, paths, manifest);
    expect(second.layers).toEqual(first.layers);
    expect(second.manifest).toEqual(first.manifest);
    expect(second.manifestBody.equals(first.manifestBody)).toBe(true);
    // A compressed blob is written beside and renamed into place: a new inode. These are the old ones.
    expect(await stamps()).toEqual(before);
  });

  it('compresses again a file whose blob is gone, and an image file replaced since', async () => {
    const { a, paths, manifest } = await twoHomes();
    const first = await pack(a, paths, manifest);
    const state = first.layers.find((layer) => layer.role === 'state')?.descriptor;
    await rm(blobPath(a.home, state?.digest ?? 'sha256:x'));
    // An image's files are replaced, never written in place.
    await writeFile(join(a.images, IMAGE, 'vmlinuz.new'), randomBytes(1000));
    await rename(join(a.images, IMAGE, 'vmlinuz.new'), join(a.images, IMAGE, 'vmlinuz'));
    const second = await pack(a, paths, manifest);
    expect(second.layers.find((layer) => layer.role === 'state')?.descriptor).toEqual(state);
    expect(await sha256File(blobPath(a.home, state?.digest ?? 'sha256:x'))).toBe(state?.digest);
    const kernel = second.layers.find((layer) => layer.name === 'vmlinuz')?.descriptor;
    expect(kernel?.digest).not.toBe(first.layers.find((layer) => layer.name === 'vmlinuz')?.descriptor.digest);
    expect((await zstdDecompress(blobPath(a.home, kernel?.digest ?? 'sha256:x'))).equals(await readFile(join(a.images, IMAGE, 'vmlinuz')))).toBe(true);
  });

  it('refuses a damaged snapshot before it packs anything', async () => {
    const { a, paths, manifest } = await twoHomes();
    await rm(paths.verified);
    const handle = await open(paths.memory, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 40 << 20);
    byte[0] = (byte[0] ?? 0) ^ 0x01;
    await handle.write(byte, 0, 1, 40 << 20);
    await handle.close();
    await expect(pack(a, paths, manifest)).rejects.toMatchObject({ code: 'E_SNAPSHOT_CORRUPT', message: expect.stringContaining(`${MEMORY_FILE} in ${paths.dir} does not match`) });
    expect(await exists(join(a.home, 'blobs'))).toBe(false);
  });

  it('packs a snapshot whose guest image is not one warmvm built (a path) without image layers', async () => {
    const { a, paths, manifest } = await twoHomes();
    const own = { ...manifest, spec: { ...manifest.spec, image: '/srv/vmlinuz + /srv/seed.iso' } };
    const packed = await pack(a, paths, own);
    expect(packed.layers.map((layer) => layer.role)).toEqual(['memory', 'state']);
  });
});

describe('a file zstd would not shrink', () => {
  it('travels as it is: its blob is the file under a second name, and the importing home links it into place', async () => {
    const { a, b, paths, manifest } = await twoHomes();
    // Random bytes stand for a qcow2 of compressed clusters; large enough to be sampled.
    const disk = randomBytes(72 << 20);
    await writeFile(join(a.images, IMAGE, 'disk.qcow2'), disk);
    const packed = await pack(a, paths, manifest);
    const media = Object.fromEntries(packed.layers.map((layer) => [layer.name, layer.descriptor.mediaType]));
    expect(media).toEqual({
      [MEMORY_FILE]: LAYER_MEDIA_TYPE,
      [STATE_FILE]: LAYER_MEDIA_TYPE,
      'cmdline.txt': LAYER_MEDIA_TYPE,
      'disk.qcow2': RAW_LAYER_MEDIA_TYPE,
      'initrd.img': LAYER_MEDIA_TYPE,
      vmlinuz: LAYER_MEDIA_TYPE,
    });
    const raw = packed.layers.find((layer) => layer.name === 'disk.qcow2')?.descriptor;
    const blob = blobPath(a.home, raw?.digest ?? 'sha256:missing');
    expect(raw?.size).toBe(disk.length);
    expect(await sha256File(blob)).toBe(raw?.digest);
    expect((await stat(blob)).ino).toBe((await stat(join(a.images, IMAGE, 'disk.qcow2'))).ino);

    // The pulling home: the blob (as a pull leaves it) becomes the image file, not a copy of it.
    await mkdir(join(b.home, 'blobs', 'sha256'), { recursive: true });
    for (const descriptor of [...packed.layers.map((layer) => layer.descriptor), packed.configBlob, packed.manifest]) {
      await writeFile(blobPath(b.home, descriptor.digest), await readFile(blobPath(a.home, descriptor.digest)));
    }
    await unpackInto(b, await imported(b.home, packed));
    const installed = join(b.images, IMAGE, 'disk.qcow2');
    expect((await readFile(installed)).equals(disk)).toBe(true);
    expect((await stat(installed)).ino).toBe((await stat(blobPath(b.home, raw?.digest ?? 'sha256:missing'))).ino);
    expect(await treeDigests(join(b.images, IMAGE))).toEqual(await treeDigests(join(a.images, IMAGE)));
  });

  it('is judged by zstd on samples of it: the same size of compressible bytes is compressed', async () => {
    const { a, paths, manifest } = await twoHomes();
    await writeFile(join(a.images, IMAGE, 'disk.qcow2'), Buffer.alloc(72 << 20, 'a compressible line of text\n'));
    const packed = await pack(a, paths, manifest);
    const layer = packed.layers.find((candidate) => candidate.name === 'disk.qcow2')?.descriptor;
    expect(layer?.mediaType).toBe(LAYER_MEDIA_TYPE);
    expect(layer?.size).toBeLessThan(1 << 20);
  });
});

describe('unpackSnapshot', () => {
  it('puts the snapshot in another home’s store as a capture leaves it, and installs its guest image', async () => {
    const { a, b, paths, manifest } = await twoHomes();
    const packed = await pack(a, paths, manifest);
    const result = await unpackInto(b, await imported(a.home, packed));
    const there = snapshotPaths(b.snapshots, KEY);

    expect(result).toEqual({ manifest, imagesInstalled: [join(b.images, IMAGE)] });
    expect((await readdir(there.dir)).sort()).toEqual(['manifest.json', MEMORY_FILE, STATE_FILE, 'verified.json'].sort());
    expect(await sha256File(there.memory)).toBe(await sha256File(paths.memory));
    expect(await sha256File(there.state)).toBe(await sha256File(paths.state));
    const memory = await stat(there.memory);
    expect(memory.size).toBe(MEMORY_APPARENT);
    // Sparse: its holes came back as holes (runs of zeros within written chunks too, at 64 KiB).
    expect(memory.blocks * 512).toBeGreaterThanOrEqual(MEMORY_DATA_BYTES);
    expect(memory.blocks * 512).toBeLessThan(MEMORY_DATA_BYTES + (1 << 20));
    expect(memory.mode & 0o777).toBe(SNAPSHOT_FILE_MODE);
    expect((await stat(there.state)).mode & 0o777).toBe(SNAPSHOT_FILE_MODE);
    expect(parseManifest(await readFile(there.manifest, 'utf8'))).toEqual(manifest);
    // verified.json records what was checksummed: the first launch checks nothing in full.
    expect(await verifyBeforeLaunch(there, manifest)).toEqual({ checked: [], unchanged: [MEMORY_FILE, STATE_FILE] });
    await verifyInFull(there, manifest);
    expect(await treeDigests(join(b.images, IMAGE))).toEqual(await treeDigests(join(a.images, IMAGE)));
    expect(await listCaptureDirs(b.snapshots)).toEqual([]);
    expect(await readdir(b.images)).toEqual([IMAGE]);
  });

  it("packs a snapshot whose memory checksum the capture's seal has not recorded yet: recorded first, so it travels with it", async () => {
    const { a, b, paths, manifest } = await twoHomes();
    const { checksum: _recorded, ...pendingMemory } = manifest.files.memory;
    const pending: SnapshotManifest = { ...manifest, files: { ...manifest.files, memory: pendingMemory } };
    await writeFile(paths.manifest, `${JSON.stringify(pending, null, 2)}\n`);
    const packed = await pack(a, paths, pending);
    expect(packed.config.manifest).toEqual(manifest);
    expect(parseManifest(await readFile(paths.manifest, 'utf8'))).toEqual(manifest);
    expect((await unpackInto(b, await imported(a.home, packed))).manifest).toEqual(manifest);
  });

  it('leaves a guest image folder the home has already as it is', async () => {
    const { a, b, paths, manifest } = await twoHomes();
    const packed = await pack(a, paths, manifest);
    await mkdir(join(b.images, IMAGE));
    await writeFile(join(b.images, IMAGE, 'vmlinuz'), 'this home’s own build');
    const before = await treeDigests(join(b.images, IMAGE));
    const mtime = (await stat(join(b.images, IMAGE, 'vmlinuz'))).mtimeMs;
    const result = await unpackInto(b, await imported(a.home, packed));
    expect(result.imagesInstalled).toEqual([]);
    expect(await treeDigests(join(b.images, IMAGE))).toEqual(before);
    expect((await stat(join(b.images, IMAGE, 'vmlinuz'))).mtimeMs).toBe(mtime);
    expect(await sha256File(join(b.snapshots, KEY, MEMORY_FILE))).toBe(await sha256File(paths.memory));
  });

  it('fails on a layer that holds another file (of another size), leaving no snapshot and no capture folder', async () => {
    const { a, b, paths, manifest } = await twoHomes();
    const input = await imported(a.home, await pack(a, paths, manifest));
    const memory = input.layers.find((layer) => layer.role === 'memory')?.descriptor;
    const layers = input.layers.map((layer) => (layer.role === 'state' && memory ? { ...layer, descriptor: memory } : layer));
    await expect(unpackInto(b, { ...input, layers })).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: expect.stringContaining(`${manifest.files.state.bytes} were expected`),
    });
    expect(await storeLeftovers(b)).toEqual([]);
    expect((await readdir(b.snapshots)).filter((entry) => !entry.startsWith('.lock-'))).toEqual([]);
  });

  it('fails on a layer that holds a file of the right size but not the one captured, leaving nothing in the store', async () => {
    const { root, a, b, paths, manifest } = await twoHomes();
    const input = await imported(a.home, await pack(a, paths, manifest));
    const other = join(root, 'other-state.raw');
    await writeFile(other, randomBytes(manifest.files.state.bytes));
    const blob = await compressFile(other, join(root, 'other.zst'));
    await rename(join(root, 'other.zst'), blobPath(a.home, blob.digest));
    const layers = input.layers.map((layer) => (layer.role === 'state' ? { ...layer, descriptor: { ...layer.descriptor, digest: blob.digest, size: blob.size } } : layer));
    await expect(unpackInto(b, { ...input, layers })).rejects.toMatchObject({ code: 'E_SNAPSHOT_CORRUPT', message: expect.stringContaining(STATE_FILE) });
    expect(await storeLeftovers(b)).toEqual([]);
  });

  it('fails on a memory file one byte off deep inside, found by the checksum taken as it is unpacked', async () => {
    const { root, a, b, paths, manifest } = await twoHomes();
    const input = await imported(a.home, await pack(a, paths, manifest));
    const other = join(root, 'other-mem.raw');
    await writeFile(other, await readFile(paths.memory));
    const handle = await open(other, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 40 << 20);
    byte[0] = (byte[0] ?? 0) ^ 0x01;
    await handle.write(byte, 0, 1, 40 << 20);
    await handle.close();
    const blob = await compressFile(other, join(root, 'other-mem.zst'));
    await rename(join(root, 'other-mem.zst'), blobPath(a.home, blob.digest));
    const layers = input.layers.map((layer) => (layer.role === 'memory' ? { ...layer, descriptor: { ...layer.descriptor, digest: blob.digest, size: blob.size } } : layer));
    await expect(unpackInto(b, { ...input, layers })).rejects.toMatchObject({ code: 'E_SNAPSHOT_CORRUPT', message: expect.stringContaining(`${MEMORY_FILE} in`) });
    expect(await storeLeftovers(b)).toEqual([]);
  });

  it('fails on a missing blob or a missing layer, leaving nothing in the store', async () => {
    const { a, b, paths, manifest } = await twoHomes();
    const input = await imported(a.home, await pack(a, paths, manifest));
    await expect(unpackInto(b, { ...input, layers: input.layers.filter((layer) => layer.role !== 'state') })).rejects.toMatchObject({
      code: 'E_SNAPSHOT_ARTIFACT',
      message: 'the snapshot has no state layer',
    });
    expect(await storeLeftovers(b)).toEqual([]);
    await rm(blobPath(a.home, input.layers.find((layer) => layer.role === 'memory')?.descriptor.digest ?? 'sha256:x'));
    await expect(unpackInto(b, input)).rejects.toMatchObject({ code: 'E_OCI_BLOB' });
    expect(await storeLeftovers(b)).toEqual([]);
  });

  it('replaces the snapshot the store had for the key', async () => {
    const { a, b, paths, manifest } = await twoHomes();
    const input = await imported(a.home, await pack(a, paths, manifest));
    const older = await makeSnapshot(b, KEY, { image: IMAGE });
    expect(await sha256File(older.paths.memory)).not.toBe(await sha256File(paths.memory));
    await unpackInto(b, input);
    expect(await sha256File(join(b.snapshots, KEY, MEMORY_FILE))).toBe(await sha256File(paths.memory));
    expect(parseManifest(await readFile(join(b.snapshots, KEY, 'manifest.json'), 'utf8'))).toEqual(manifest);
    expect((await readdir(b.snapshots)).filter((entry) => !entry.startsWith('.lock-'))).toEqual([KEY]);
  });

  it('leaves the snapshot the store had in place when an unpack over it fails', async () => {
    const { a, b, paths, manifest } = await twoHomes();
    const input = await imported(a.home, await pack(a, paths, manifest));
    await unpackInto(b, input);
    const before = await treeDigests(join(b.snapshots, KEY));
    const memory = input.layers.find((layer) => layer.role === 'memory')?.descriptor;
    const layers = input.layers.map((layer) => (layer.role === 'state' && memory ? { ...layer, descriptor: memory } : layer));
    await expect(unpackInto(b, { ...input, layers })).rejects.toMatchObject({ code: 'E_OCI_BLOB' });
    expect(await treeDigests(join(b.snapshots, KEY))).toEqual(before);
    expect(await listCaptureDirs(b.snapshots)).toEqual([]);
  });

  // A config comes from a registry or a tar file, and the unpack joins its manifest's file names to the capture folder.
  it('never writes a file outside the snapshot’s folder, whatever names the config’s manifest gives', async () => {
    const { a, b, paths, manifest } = await twoHomes();
    const packed = await pack(a, paths, manifest);
    const input = await imported(a.home, packed);
    const escaped = join(b.home, 'escaped.raw');
    const files = { ...manifest.files, memory: { ...manifest.files.memory, name: '../../escaped.raw' } };
    // Refused when the config is read (as a pull or an import reads it), or by the unpack: either way nothing escapes.
    const outcome = await (async () => {
      const config = parseConfig(serializeConfig({ ...input.config, manifest: { ...manifest, files } }), 'the layout');
      await unpackInto(b, { ...input, config });
      return 'unpacked';
    })().catch((error: { code?: string }) => error.code);
    expect(await exists(escaped), `${escaped} was written (the unpack's outcome: ${outcome})`).toBe(false);
    expect(outcome).toBe('E_SNAPSHOT_ARTIFACT');
  });

  // Found by trying: such a config unpacks "successfully", manifest.json (or verified.json) then overwrites the memory
  // file, and the first launch sets the snapshot aside (E_SNAPSHOT_CORRUPT: "manifest.json is 789 bytes, its manifest says 67112960").
  it('refuses a config whose file names are the store’s own files, storing nothing', async () => {
    for (const name of ['manifest.json', 'verified.json']) {
      const { a, b, paths, manifest } = await twoHomes();
      const input = await imported(a.home, await pack(a, paths, manifest));
      const files = { ...manifest.files, memory: { ...manifest.files.memory, name } };
      const outcome = await (async () => {
        const config = parseConfig(serializeConfig({ ...input.config, manifest: { ...manifest, files } }), 'the layout');
        await unpackInto(b, { ...input, config });
        return 'unpacked';
      })().catch((error: { code?: string }) => error.code);
      expect({ name, outcome, stored: await storeLeftovers(b) }).toEqual({ name, outcome: 'E_SNAPSHOT_ARTIFACT', stored: [] });
    }
  });
});

describe('the snapshot of an image downloaded from a URL', () => {
  it('packs the cached image (images/url-<algorithm>-<hex>/), and the importing home has it installed: its start makes no request', async () => {
    const root = await temp();
    const a = await makeHome(root, 'a');
    const b = await makeHome(root, 'b');
    const digest = { algorithm: 'sha256' as const, hex: 'c'.repeat(64) };
    const dir = urlImageDir(digest);
    await mkdir(join(a.images, dir));
    const base = join(a.images, dir, urlImageFile('qcow2'));
    await makeBaseDisk(base);
    const { paths, manifest } = await makeSnapshot(a, KEY, { image: dir, disk: (disk) => makeOverlay(base, disk) });
    const packed = await pack(a, paths, manifest);
    expect(packed.config.diskBacking).toEqual({ imageDir: dir, file: 'disk.qcow2' });
    expect(packed.layers.filter((layer) => layer.role === 'image').map(({ name, imageDir }) => [name, imageDir])).toEqual([['disk.qcow2', dir]]);

    await unpackInto(b, await imported(a.home, packed));
    const theirs = join(b.images, dir, 'disk.qcow2');
    expect(await backingFilename(snapshotPaths(b.snapshots, KEY).disk)).toBe(theirs);
    // Nothing listens at this URL: a request would fail the call.
    const found = await ensureUrlImage({ url: 'http://127.0.0.1:9/disk.qcow2', digest, format: 'qcow2', compression: undefined }, { imagesDir: b.images });
    expect(found).toEqual({ path: theirs, dir, downloaded: false });
  });
});

describe('a disk guest’s snapshot', () => {
  const BASE_DIR = 'debian-x';

  /** Home `a` with a qcow2 base image in `images/debian-x/` and a snapshot whose frozen disk is an overlay over it. */
  async function diskHomes() {
    const root = await temp();
    const a = await makeHome(root, 'a');
    const b = await makeHome(root, 'b');
    await mkdir(join(a.images, BASE_DIR));
    const base = join(a.images, BASE_DIR, 'disk.qcow2');
    await makeBaseDisk(base);
    await writeFile(join(a.images, BASE_DIR, 'vmlinuz'), randomBytes(50_000));
    const { paths, manifest } = await makeSnapshot(a, KEY, { image: BASE_DIR, disk: (disk) => makeOverlay(base, disk) });
    return { root, a, b, base, paths, manifest };
  }

  it('moves the frozen disk with its base image, and rebases it onto the importing home’s copy', async () => {
    const { a, b, base, paths, manifest } = await diskHomes();
    expect(await backingFilename(paths.disk)).toBe(base);
    const packed = await pack(a, paths, manifest);
    expect(packed.config.diskBacking).toEqual({ imageDir: BASE_DIR, file: 'disk.qcow2' });
    expect(packed.layers.map(({ role, name, imageDir }) => [role, name, imageDir])).toEqual([
      ['memory', MEMORY_FILE, undefined],
      ['state', STATE_FILE, undefined],
      ['disk', FROZEN_DISK, undefined],
      ['image', 'disk.qcow2', BASE_DIR],
      ['image', 'vmlinuz', BASE_DIR],
    ]);

    const result = await unpackInto(b, await imported(a.home, packed));
    const there = snapshotPaths(b.snapshots, KEY);
    const theirBase = join(b.images, BASE_DIR, 'disk.qcow2');
    expect(result.imagesInstalled).toEqual([join(b.images, BASE_DIR)]);
    expect(await sha256File(theirBase)).toBe(await sha256File(base));
    expect(await backingFilename(there.disk)).toBe(theirBase);
    expect(await readBackingFile(there.disk)).toBe(theirBase);
    expect((await stat(there.disk)).mode & 0o777).toBe(SNAPSHOT_FILE_MODE);
    // What the guest sees through the chain is what it saw in home a.
    await qemuImg('compare', '-U', '-f', 'qcow2', '-F', 'qcow2', paths.disk, there.disk);

    const written = parseManifest(await readFile(there.manifest, 'utf8'));
    const sum = await fileChecksum(there.disk);
    expect(written.files.disk).toEqual({ name: FROZEN_DISK, bytes: sum.bytes, checksum: sum.checksum });
    expect(written.files.disk?.checksum).not.toBe(manifest.files.disk?.checksum);
    expect(result.manifest).toEqual(written);
    expect({ ...written, files: { ...written.files, disk: manifest.files.disk } }).toEqual(manifest);
    await verifyInFull(there, written);
    expect((await verifyBeforeLaunch(there, written)).checked).toEqual([]);
    // The exporting home's snapshot is as it was.
    await verifyInFull(paths, manifest);
    expect(await backingFilename(paths.disk)).toBe(base);
  });

  it('refuses a disk whose base image the snapshot names by folder when the importing home lacks it and it was not packed', async () => {
    const { a, b, paths, manifest } = await diskHomes();
    const packed = await pack(a, paths, manifest);
    const input = await imported(a.home, packed);
    const layers = input.layers.filter((layer) => layer.role !== 'image');
    await expect(unpackInto(b, { ...input, layers })).rejects.toMatchObject({
      code: 'E_SNAPSHOT_BACKING',
      message: expect.stringContaining(join(b.images, BASE_DIR, 'disk.qcow2')),
    });
    expect(await storeLeftovers(b)).toEqual([]);
  });

  it('names a base image outside the images folder by its path, which must exist on the importing side', async () => {
    const root = await temp();
    const a = await makeHome(root, 'a');
    const b = await makeHome(root, 'b');
    const c = await makeHome(root, 'c');
    await mkdir(join(root, 'outside'));
    const base = join(root, 'outside', 'base.qcow2');
    await makeBaseDisk(base);
    await makeImage(a, IMAGE);
    const { paths, manifest } = await makeSnapshot(a, KEY, { image: IMAGE, disk: (disk) => makeOverlay(base, disk) });
    const packed = await pack(a, paths, manifest);
    expect(packed.config.diskBacking).toEqual({ path: base });
    expect(packed.layers.some((layer) => layer.imageDir !== undefined && layer.name === 'base.qcow2')).toBe(false);

    // Where that path exists, the disk points at it.
    await unpackInto(b, await imported(a.home, packed));
    expect(await backingFilename(join(b.snapshots, KEY, FROZEN_DISK))).toBe(base);
    await verifyInFull(snapshotPaths(b.snapshots, KEY), parseManifest(await readFile(join(b.snapshots, KEY, 'manifest.json'), 'utf8')));

    await rm(base);
    let thrown: unknown;
    await unpackInto(c, await imported(a.home, packed)).catch((error: unknown) => {
      thrown = error;
    });
    expect(thrown).toMatchObject({ code: 'E_SNAPSHOT_BACKING', message: expect.stringContaining(base), hint: expect.stringContaining(`copy that image to ${base}`) });
    expect(await storeLeftovers(c)).toEqual([]);
  });

  it('finds the base image in images/ when the overlay names it by a relative path', async () => {
    const { a, b, paths, manifest } = await (async () => {
      const root = await temp();
      const a = await makeHome(root, 'a');
      const b = await makeHome(root, 'b');
      await mkdir(join(a.images, BASE_DIR));
      await makeBaseDisk(join(a.images, BASE_DIR, 'disk.qcow2'));
      // qemu-img resolves a relative backing name against the overlay's folder, and so does readBackingFile.
      const made = await makeSnapshot(a, KEY, { image: BASE_DIR, disk: (disk) => makeOverlay(`../../images/${BASE_DIR}/disk.qcow2`, disk) });
      return { a, b, ...made };
    })();
    const packed = await pack(a, paths, manifest);
    expect(packed.config.diskBacking).toEqual({ imageDir: BASE_DIR, file: 'disk.qcow2' });
    await unpackInto(b, await imported(a.home, packed));
    expect(await backingFilename(join(b.snapshots, KEY, FROZEN_DISK))).toBe(join(b.images, BASE_DIR, 'disk.qcow2'));
  });

  it('moves a frozen disk without a backing file as it is', async () => {
    const root = await temp();
    const a = await makeHome(root, 'a');
    const b = await makeHome(root, 'b');
    await makeImage(a, IMAGE);
    const { paths, manifest } = await makeSnapshot(a, KEY, { image: IMAGE, disk: makeBaseDisk });
    const packed = await pack(a, paths, manifest);
    expect(packed.config.diskBacking).toBeUndefined();
    const result = await unpackInto(b, await imported(a.home, packed));
    expect(result.manifest).toEqual(manifest);
    expect(await sha256File(join(b.snapshots, KEY, FROZEN_DISK))).toBe(await sha256File(paths.disk));
    expect(parseManifest(await readFile(join(b.snapshots, KEY, 'manifest.json'), 'utf8'))).toEqual(manifest);
  });

  it('names a base image nested deeper under images/ by its path', async () => {
    const root = await temp();
    const a = await makeHome(root, 'a');
    await mkdir(join(a.images, BASE_DIR, 'sub'), { recursive: true });
    const base = join(a.images, BASE_DIR, 'sub', 'disk.qcow2');
    await makeBaseDisk(base);
    const { paths, manifest } = await makeSnapshot(a, KEY, { image: BASE_DIR, disk: (disk) => makeOverlay(base, disk) });
    expect((await pack(a, paths, manifest)).config.diskBacking).toEqual({ path: base });
  });
});
