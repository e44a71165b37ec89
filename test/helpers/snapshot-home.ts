import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { homePaths } from '../../adapters/instance/paths.js';
import { fileChecksum } from '../../adapters/snapshot/checksum.js';
import type { SnapshotManifest } from '../../adapters/snapshot/manifest.js';
import { FROZEN_DISK, MEMORY_FILE, STATE_FILE, snapshotPaths, type SnapshotPaths } from '../../adapters/snapshot/store.js';
import { recordVerified } from '../../adapters/snapshot/verify.js';
import { manifestFixture } from './manifest-fixture.js';
import { useTempDirs } from './temp.js';

export const run = promisify(execFile);

const MIB = 1 << 20;
/** The memory file's apparent size: mostly a hole. */
export const MEMORY_APPARENT = 64 * MIB + 4096;
/** Where the memory file holds data (some random, some compressible, one piece unaligned and at the very end). */
const MEMORY_PIECES: [number, () => Buffer][] = [
  [8192, () => randomBytes(MIB)],
  [13 * MIB + 777, () => Buffer.alloc(MIB, 'warmvm ')],
  [40 * MIB, () => randomBytes(MIB / 2)],
  [MEMORY_APPARENT - 300_000, () => randomBytes(300_000)],
];
export const MEMORY_DATA_BYTES = MIB + MIB + MIB / 2 + 300_000;

/** Temp folders `/tmp/packtest-*`, removed after each test. */
export const usePackTemp = (): (() => Promise<string>) => useTempDirs('packtest-');

export interface TestHome {
  home: string;
  images: string;
  snapshots: string;
}

export async function makeHome(parent: string, name: string): Promise<TestHome> {
  const paths = homePaths(join(parent, name));
  await mkdir(paths.images, { recursive: true });
  await mkdir(paths.snapshots, { recursive: true });
  return { home: paths.home, images: paths.images, snapshots: paths.snapshots };
}

/** A guest image folder `images/<dir>/` with a few small files; their bytes by name. */
export async function makeImage(home: TestHome, dir: string): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = { vmlinuz: randomBytes(200_000), 'initrd.img': Buffer.alloc(300_000, 'initrd '), 'cmdline.txt': Buffer.from('console=ttyS0\n') };
  await mkdir(join(home.images, dir), { recursive: true });
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(home.images, dir, name), bytes);
  return files;
}

/**
 * A snapshot folder as a capture leaves it: a sparse mem.raw, a small state.raw, the frozen disk when
 * `disk` makes one (in the folder, given its path), manifest.json with their checksums, verified.json.
 */
export async function makeSnapshot(
  home: TestHome,
  key: string,
  options: { image: string; disk?: (path: string) => Promise<void>; overrides?: Partial<SnapshotManifest> },
): Promise<{ paths: SnapshotPaths; manifest: SnapshotManifest }> {
  const paths = snapshotPaths(home.snapshots, key);
  await mkdir(paths.dir, { recursive: true });
  const handle = await open(paths.memory, 'w');
  await handle.truncate(MEMORY_APPARENT);
  for (const [offset, data] of MEMORY_PIECES) {
    const bytes = data();
    await handle.write(bytes, 0, bytes.length, offset);
  }
  await handle.close();
  await writeFile(paths.state, randomBytes(70_000));
  if (options.disk) await options.disk(paths.disk);
  const memory = await fileChecksum(paths.memory);
  const state = await fileChecksum(paths.state);
  const disk = options.disk ? await fileChecksum(paths.disk) : undefined;
  const manifest = manifestFixture({
    specHash: key,
    spec: { image: options.image, disk: options.disk !== undefined },
    files: {
      memory: { name: MEMORY_FILE, bytes: memory.bytes, dataBytes: memory.dataBytes, checksum: memory.checksum },
      state: { name: STATE_FILE, bytes: state.bytes, checksum: state.checksum },
      disk: disk && { name: FROZEN_DISK, bytes: disk.bytes, checksum: disk.checksum },
    },
    ...options.overrides,
  });
  await writeFile(paths.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
  await recordVerified(paths, manifest);
  return { paths, manifest };
}

export async function qemuImg(...args: string[]): Promise<string> {
  return (await run('qemu-img', args)).stdout;
}

/** `qemu-img info --output=json`'s backing-filename of a qcow2 image (undefined when it has none). */
export async function backingFilename(path: string): Promise<string | undefined> {
  return (JSON.parse(await qemuImg('info', '--output=json', '-U', path)) as { 'backing-filename'?: string })['backing-filename'];
}

/** A 16 MiB qcow2 with a little data written into it. */
export async function makeBaseDisk(path: string): Promise<void> {
  await qemuImg('create', '-q', '-f', 'qcow2', path, '16M');
  await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 256k', '-c', 'write -P 0x33 8M 64k', path]);
}

/** A qcow2 overlay over `base` (an absolute path), with a little data of its own. */
export async function makeOverlay(base: string, path: string): Promise<void> {
  await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, path);
  await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xc4 64k 128k', path]);
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(8 * MIB);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Every file under `dir`, by path relative to it, with its sha256. */
export async function treeDigests(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[path.slice(dir.length + 1)] = await sha256File(path);
  }
  return out;
}

export async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}
