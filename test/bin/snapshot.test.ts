import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileChecksum } from '../../adapters/snapshot/checksum.js';
import { cli } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';
import { damageMemory, writeInstance, writeSnapshot } from '../adapters/vm/home-fixture.js';

// The built CLI as a real process (npm test builds first), on snapshots written to a temp home.
const temp = useTempDirs();

describe('warmvm snapshot seal', () => {
  it("records the memory file's checksum once; exit 1 for a file changed since the capture and for a key not in the store", async () => {
    const home = await temp();
    const pending = await writeSnapshot(home, 'k1', {}, { sealed: false });
    const first = await cli(['snapshot', 'seal', 'k1'], { WARMVM_HOME: home });
    expect([first.exitCode, first.stdout]).toEqual([0, "k1: the memory file's checksum is recorded"]);
    const { checksum } = await fileChecksum(pending.memory);
    expect(JSON.parse(await readFile(pending.manifest, 'utf8')).files.memory.checksum).toBe(checksum);
    const again = await cli(['snapshot', 'seal', 'k1', '--json'], { WARMVM_HOME: home });
    expect([again.exitCode, again.json]).toEqual([0, { key: 'k1', dir: pending.dir, status: 'recorded already', checksum }]);
    const changed = await writeSnapshot(home, 'k2', {}, { sealed: false });
    await damageMemory(changed);
    const refused = await cli(['snapshot', 'seal', 'k2'], { WARMVM_HOME: home });
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toBe(
      `k2: the snapshot's mem.raw in ${changed.dir} changed (its size, times or inode) before its checksum was recorded; a start of its config sets it aside and captures anew`,
    );
    expect(JSON.parse(await readFile(changed.manifest, 'utf8')).files.memory.checksum).toBeUndefined();
    const outside = await cli(['snapshot', 'seal', '../k1'], { WARMVM_HOME: home });
    expect([outside.exitCode, outside.stdout]).toEqual([1, `there is no snapshot "../k1" in ${join(home, 'snapshots')}`]);
  });
});

describe('warmvm snapshot verify', () => {
  it('exits 0 when every snapshot is whole, with a progress line per snapshot on stderr', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    await writeSnapshot(home, 'k2');
    const result = await cli(['snapshot', 'verify'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.split('\n')).toEqual(['k1: ok', 'k2: ok', 'all 2 snapshot(s) are whole']);
    // How much of the sparse file counts as data depends on the file system (FIEMAP, or a scan by 1 MiB).
    expect(result.stderr.split('\n')).toEqual([
      expect.stringMatching(/^verifying snapshot k1: mem\.raw [\d.]+ [KM]B of data, state\.raw 18 B$/),
      expect.stringMatching(/^verifying snapshot k2: mem\.raw [\d.]+ [KM]B of data, state\.raw 18 B$/),
    ]);
  });

  it('exits 1 on a memory file with one byte changed, naming it and the fix; the other snapshot is ok', async () => {
    const home = await temp();
    const damaged = await writeSnapshot(home, 'k1');
    await writeSnapshot(home, 'k2');
    await writeInstance(home, 'web-1', { snapshotKey: 'k1' });
    const size = (await stat(damaged.memory)).size;
    await damageMemory(damaged);
    expect((await stat(damaged.memory)).size).toBe(size);
    const result = await cli(['snapshot', 'verify', '--json'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(1);
    expect(result.json.ok).toBe(false);
    const [bad, good] = result.json.snapshots as Record<string, string | null>[];
    expect(bad).toMatchObject({ key: 'k1', status: 'damaged', dir: damaged.dir });
    expect(bad?.reason).toContain(`the snapshot's mem.raw in ${damaged.dir} does not match its checksum`);
    expect(bad?.fix).toBe('start an instance of its config: the start checks it, sets it aside and captures a new one; or "warmvm reset --snapshot --name web-1"');
    expect(good).toEqual({ key: 'k2', dir: join(home, 'snapshots', 'k2'), status: 'ok', reason: null, fix: null });
    const text = await cli(['snapshot', 'verify', 'k1'], { WARMVM_HOME: home });
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toContain("k1: damaged: the snapshot's mem.raw");
    expect(text.stdout).toContain('\n  fix: start an instance of its config');
    expect(text.stdout).toContain('1 of 1 snapshot(s) failed the check');
  });

  it("records a memory checksum the capture's seal has not recorded yet, and finds a file changed before it damaged", async () => {
    const home = await temp();
    const pending = await writeSnapshot(home, 'k1', {}, { sealed: false });
    const changed = await writeSnapshot(home, 'k2', {}, { sealed: false });
    await damageMemory(changed);
    const result = await cli(['snapshot', 'verify', '--json'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(1);
    const [k1, k2] = result.json.snapshots as Record<string, string>[];
    expect(k1).toMatchObject({ key: 'k1', status: 'ok' });
    expect(JSON.parse(await readFile(pending.manifest, 'utf8')).files.memory.checksum).toBe((await fileChecksum(pending.memory)).checksum);
    expect(k2).toMatchObject({ key: 'k2', status: 'damaged', reason: expect.stringContaining('changed (its size, times or inode) before its checksum was recorded') });
  });

  it('forgets what was recorded as checked of a damaged snapshot, so the next start checksums it in full', async () => {
    const home = await temp();
    const damaged = await writeSnapshot(home, 'k1');
    expect((await cli(['snapshot', 'verify'], { WARMVM_HOME: home })).exitCode).toBe(0);
    expect(JSON.parse(await readFile(damaged.verified, 'utf8'))).toHaveProperty(['mem.raw']);
    await damageMemory(damaged);
    expect((await cli(['snapshot', 'verify'], { WARMVM_HOME: home })).exitCode).toBe(1);
    await expect(stat(damaged.verified)).rejects.toThrow(/ENOENT/);
  });

  it('exits 1 on a truncated state file and on a manifest that cannot be read, with no instance to reset', async () => {
    const home = await temp();
    const truncated = await writeSnapshot(home, 'k1');
    await writeFile(truncated.state, '');
    const unreadable = await writeSnapshot(home, 'k2');
    await writeFile(unreadable.manifest, '{');
    const result = await cli(['snapshot', 'verify', '--json'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(1);
    const [k1, k2] = result.json.snapshots as Record<string, string>[];
    expect(k1).toMatchObject({ key: 'k1', status: 'damaged' });
    expect(k1?.reason).toMatch(/^the snapshot's state\.raw is 0 bytes, its manifest says \d+$/);
    expect(k1?.fix).toContain(`or remove ${truncated.dir}`);
    expect(k2).toMatchObject({ key: 'k2', status: 'damaged' });
    expect(k2?.reason).toContain('manifest.json cannot be read');
    const text = await cli(['snapshot', 'verify'], { WARMVM_HOME: home });
    expect(text.stderr.split('\n')).toEqual([expect.stringMatching(/^verifying snapshot k1: mem\.raw /), 'verifying snapshot k2']);
  });

  it('exits 1 on a key that is not in the store, and never reads outside it', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    const result = await cli(['snapshot', 'verify', 'k1', 'nope', '../snapshots/k1', '--json'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(1);
    expect((result.json.snapshots as Record<string, string>[]).map((snapshot) => [snapshot.key, snapshot.status])).toEqual([
      ['k1', 'ok'],
      ['nope', 'missing'],
      ['../snapshots/k1', 'missing'],
    ]);
  });

  it('exits 0 on an empty store, saying so', async () => {
    const home = await temp();
    const result = await cli(['snapshot', 'verify'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(`no snapshots in ${join(home, 'snapshots')}: nothing to verify`);
    const json = await cli(['snapshot', 'verify', '--json'], { WARMVM_HOME: home });
    expect(json.exitCode).toBe(0);
    expect(json.json).toEqual({ ok: true, snapshots: [] });
  });
});
