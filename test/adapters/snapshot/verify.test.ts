import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileChecksum } from '../../../adapters/snapshot/checksum.js';
import type { SnapshotManifest } from '../../../adapters/snapshot/manifest.js';
import { countResumeFailure, clearResumeFailures, readResumeFailures } from '../../../adapters/snapshot/resume-failures.js';
import { MEMORY_FILE, STATE_FILE, snapshotPaths, type SnapshotPaths } from '../../../adapters/snapshot/store.js';
import { recordVerified, verifyBeforeLaunch, verifyInFull } from '../../../adapters/snapshot/verify.js';
import { manifestFixture } from '../../helpers/manifest-fixture.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

/** A snapshot folder with a memory and a state file, its manifest's checksums their own, verified as a capture leaves it. */
async function captured(): Promise<{ paths: SnapshotPaths; manifest: SnapshotManifest }> {
  const paths = snapshotPaths(join(await temp(), 'snapshots'), 'k');
  await mkdir(paths.dir, { recursive: true });
  await writeFile(paths.memory, randomBytes(1 << 20));
  await writeFile(paths.state, randomBytes(4096));
  const memory = await fileChecksum(paths.memory);
  const state = await fileChecksum(paths.state);
  const manifest = manifestFixture({
    files: {
      memory: { name: MEMORY_FILE, bytes: memory.bytes, dataBytes: memory.dataBytes, checksum: memory.checksum },
      state: { name: STATE_FILE, bytes: state.bytes, checksum: state.checksum },
      disk: undefined,
    },
  });
  await recordVerified(paths, manifest);
  return { paths, manifest };
}

describe('verifyBeforeLaunch', () => {
  it('reads nothing in full while every file is as it was checksummed', async () => {
    const { paths, manifest } = await captured();
    expect(await verifyBeforeLaunch(paths, manifest)).toEqual({ checked: [], unchanged: [MEMORY_FILE, STATE_FILE] });
  });

  it('checksums a file whose times changed, and then trusts it again', async () => {
    const { paths, manifest } = await captured();
    await utimes(paths.memory, new Date(), new Date(Date.now() - 60_000));
    const full: string[] = [];
    expect(await verifyBeforeLaunch(paths, manifest, { onFullCheck: (file) => full.push(file) })).toEqual({ checked: [MEMORY_FILE], unchanged: [STATE_FILE] });
    expect(full).toEqual([MEMORY_FILE]);
    expect((await verifyBeforeLaunch(paths, manifest)).checked).toEqual([]);
  });

  it('finds bytes changed in place, a file cut short, a file missing, and no stamp at all', async () => {
    const { paths, manifest } = await captured();
    const handle = await open(paths.memory, 'r+');
    await handle.write(Buffer.from('damage'), 0, 6, 4096);
    await handle.close();
    await expect(verifyBeforeLaunch(paths, manifest)).rejects.toMatchObject({ code: 'E_SNAPSHOT_CORRUPT', message: expect.stringContaining('does not match its checksum') });
    // A failed check records nothing: the next launch checks again.
    await expect(verifyBeforeLaunch(paths, manifest)).rejects.toMatchObject({ code: 'E_SNAPSHOT_CORRUPT' });
    await truncate(paths.memory, 1000);
    await expect(verifyBeforeLaunch(paths, manifest)).rejects.toMatchObject({
      code: 'E_SNAPSHOT_CORRUPT',
      message: expect.stringContaining('is 1000 bytes, its manifest says 1048576'),
    });
    await rm(paths.memory);
    await expect(verifyBeforeLaunch(paths, manifest)).rejects.toMatchObject({ code: 'E_SNAPSHOT_MISSING' });
    const fresh = await captured();
    await rm(fresh.paths.verified);
    expect((await verifyBeforeLaunch(fresh.paths, fresh.manifest)).checked).toEqual([MEMORY_FILE, STATE_FILE]);
  });

  it('verifyInFull checks whatever the stamps say', async () => {
    const { paths, manifest } = await captured();
    await verifyInFull(paths, manifest);
    const handle = await open(paths.state, 'r+');
    await handle.write(Buffer.from('x'), 0, 1, 0);
    await handle.close();
    await recordVerified(paths, manifest);
    await expect(verifyInFull(paths, manifest)).rejects.toMatchObject({ code: 'E_SNAPSHOT_CORRUPT' });
  });
});

describe('resume failures in a row', () => {
  it('count from zero, per attempt, until cleared', async () => {
    const paths = snapshotPaths(join(await temp(), 'snapshots'), 'k');
    await mkdir(paths.dir, { recursive: true });
    expect(await readResumeFailures(paths)).toBe(0);
    await countResumeFailure(paths);
    await countResumeFailure(paths);
    expect(await readResumeFailures(paths)).toBe(2);
    await clearResumeFailures(paths);
    expect(await readResumeFailures(paths)).toBe(0);
  });
});
