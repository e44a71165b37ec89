import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';
import { writeInstance, writeSnapshot } from '../adapters/vm/home-fixture.js';

// The built CLI as a real process (npm test builds first), on a temp home with no QEMU running.
const temp = useTempDirs();

describe('warmvm reset --snapshot', () => {
  it("removes the snapshot named in the instance's snapshot-key file, its set-aside copies, and an old home's snapshots/<name>", async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    await writeSnapshot(home, 'k1.set-aside-2026-11-22T00-00-00-000Z');
    await writeSnapshot(home, 'k2');
    await mkdir(join(home, 'snapshots', 'web-1'));
    const dir = await writeInstance(home, 'web-1', { snapshotKey: 'k1' });
    await writeInstance(home, 'web-2', { snapshotKey: 'k1' });
    const result = await cli(['reset', '--name', 'web-1', '--snapshot', '--json'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    const snapshots = join(home, 'snapshots');
    expect(result.json).toMatchObject({ name: 'web-1', outcome: 'reset', snapshot: 'k1', snapshotUsedBy: [] });
    expect((result.json.removed as string[]).sort()).toEqual(
      [dir, join(snapshots, 'k1'), join(snapshots, 'k1.set-aside-2026-11-22T00-00-00-000Z'), join(snapshots, 'web-1')].sort(),
    );
    expect(await readdir(snapshots)).toEqual(['k2']);
    expect(await readdir(join(home, 'instances'))).toEqual(['web-2']);
  });

  it('without --snapshot, leaves the snapshot in place', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    const dir = await writeInstance(home, 'web-1', { snapshotKey: 'k1' });
    const result = await cli(['reset', '--name', 'web-1', '--json'], { WARMVM_HOME: home });
    expect(result.json).toMatchObject({ removed: [dir], snapshot: null });
    expect(await readdir(join(home, 'snapshots'))).toEqual(['k1']);
  });

  it('says so when the instance names no snapshot', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    await writeInstance(home, 'web-1');
    const result = await cli(['reset', '--name', 'web-1', '--snapshot'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('instance "web-1" names no snapshot it ran from or captured');
    expect(await readdir(join(home, 'snapshots'))).toEqual(['k1']);
  });
});
