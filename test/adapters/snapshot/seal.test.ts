import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileChecksum } from '../../../adapters/snapshot/checksum.js';
import { parseManifest, type SnapshotManifest, sameCapture } from '../../../adapters/snapshot/manifest.js';
import { sealedManifest, sealMemory } from '../../../adapters/snapshot/seal.js';
import { MEMORY_FILE, STATE_FILE, snapshotPaths, type SnapshotPaths } from '../../../adapters/snapshot/store.js';
import { recordVerified, verifyBeforeLaunch } from '../../../adapters/snapshot/verify.js';
import { manifestFixture } from '../../helpers/manifest-fixture.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

/** A snapshot as a capture publishes it: the memory file stamped, its checksum not recorded yet. */
async function published(): Promise<{ paths: SnapshotPaths; manifest: SnapshotManifest }> {
  const paths = snapshotPaths(join(await temp(), 'snapshots'), 'k');
  await mkdir(paths.dir, { recursive: true });
  await writeFile(paths.memory, randomBytes(1 << 20));
  await writeFile(paths.state, randomBytes(4096));
  const state = await fileChecksum(paths.state);
  const manifest = manifestFixture({
    files: { memory: { name: MEMORY_FILE, bytes: 1 << 20, dataBytes: 1 << 20 }, state: { name: STATE_FILE, bytes: state.bytes, checksum: state.checksum }, disk: undefined },
  });
  await writeFile(paths.manifest, JSON.stringify(manifest));
  await recordVerified(paths, manifest);
  return { paths, manifest };
}

const recorded = async (paths: SnapshotPaths): Promise<string | undefined> => parseManifest(await readFile(paths.manifest, 'utf8')).files.memory.checksum;

/** A live process holding `lockFile` (its pid in it), until `release`. */
async function heldBy(lockFile: string): Promise<{ pid: number; release(): void }> {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  await writeFile(lockFile, `${child.pid}\n`);
  return { pid: child.pid as number, release: () => child.kill('SIGKILL') };
}

describe('sealMemory', () => {
  it("records the memory file's checksum in the manifest once, the rest of the manifest as it was", async () => {
    const { paths, manifest } = await published();
    const sealed = await sealMemory(paths);
    const { checksum } = await fileChecksum(paths.memory);
    expect(sealed).toMatchObject({ status: 'sealed', checksum });
    const after = parseManifest(await readFile(paths.manifest, 'utf8'));
    expect(after).toEqual({ ...manifest, files: { ...manifest.files, memory: { ...manifest.files.memory, checksum } } });
    expect(await sealMemory(paths)).toEqual({ status: 'recorded already', checksum });
    // What the seal recorded is what a later full check compares with.
    await utimes(paths.memory, new Date(), new Date(Date.now() - 60_000));
    expect((await verifyBeforeLaunch(paths, after)).checked).toEqual([MEMORY_FILE]);
  });

  it('records nothing for a memory file changed since the capture stamped it, even with the same size', async () => {
    const { paths } = await published();
    const handle = await open(paths.memory, 'r+');
    await handle.write(Buffer.from('damage'), 0, 6, 4096);
    await handle.close();
    expect(await sealMemory(paths)).toEqual({ status: 'changed', reason: expect.stringContaining('changed (its size, times or inode) before its checksum was recorded') });
    expect(await recorded(paths)).toBeUndefined();
  });

  it('leaves a snapshot gone meanwhile alone, and one another process seals to it (or waits for it)', async () => {
    const gone = await published();
    await rename(gone.paths.dir, `${gone.paths.dir}.set-aside-x`);
    expect(await sealMemory(gone.paths)).toEqual({ status: 'missing' });
    const { paths } = await published();
    const other = await heldBy(join(paths.root, `.seal-${paths.key}`));
    try {
      expect(await sealMemory(paths)).toEqual({ status: 'busy', holder: other.pid });
      setTimeout(() => other.release(), 300);
      expect(await sealMemory(paths, { wait: true })).toMatchObject({ status: 'sealed' });
    } finally {
      other.release();
    }
  });
});

describe('sealedManifest', () => {
  it('gives the checksum, sealing it first when the capture has not yet; refuses a file changed before', async () => {
    const { paths, manifest } = await published();
    const { checksum } = await fileChecksum(paths.memory);
    expect((await sealedManifest(paths, manifest)).memoryChecksum).toBe(checksum);
    expect(await recorded(paths)).toBe(checksum);
    const changed = await published();
    await writeFile(changed.paths.memory, randomBytes(1 << 20));
    await expect(sealedManifest(changed.paths, changed.manifest)).rejects.toMatchObject({
      code: 'E_SNAPSHOT_CORRUPT',
      message: expect.stringContaining('before its checksum was recorded'),
    });
  });
});

describe('verifyBeforeLaunch of a memory file whose checksum is not recorded yet', () => {
  it('trusts it as the capture stamped it, and finds it damaged once it changed', async () => {
    const { paths, manifest } = await published();
    expect(await verifyBeforeLaunch(paths, manifest)).toEqual({ checked: [], unchanged: [MEMORY_FILE, STATE_FILE] });
    await utimes(paths.memory, new Date(), new Date(Date.now() - 60_000));
    await expect(verifyBeforeLaunch(paths, manifest)).rejects.toMatchObject({
      code: 'E_SNAPSHOT_CORRUPT',
      message: `the snapshot's mem.raw in ${paths.dir} changed (its size, times or inode) before its checksum was recorded`,
    });
  });
});

describe('sameCapture', () => {
  it('tells captures apart by time, instance and memory size, and by checksum where both have one', () => {
    const base = manifestFixture();
    const pending = { ...base, files: { ...base.files, memory: { name: MEMORY_FILE, bytes: 1, dataBytes: 1 } } };
    expect(sameCapture(base, pending)).toBe(true);
    expect(sameCapture(base, { ...base, createdAt: '2026-11-22T00:00:00.001Z' })).toBe(false);
    expect(sameCapture(base, { ...base, capturedBy: 'other' })).toBe(false);
    expect(sameCapture(base, { ...base, files: { ...base.files, memory: { ...base.files.memory, checksum: 'y' } } })).toBe(false);
  });
});
