import { spawnSync } from 'node:child_process';
import { lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { instancePaths } from '../../../adapters/instance/paths.js';
import type { InstanceStatus } from '../../../adapters/vm/control.js';
import { instancesNoting, listInstances, listSnapshots, readSnapshotKey, runningFrom } from '../../../adapters/vm/instances.js';
import { useTempDirs } from '../../helpers/temp.js';
import { MEMORY_BYTES, writeInstance, writeSnapshot } from './home-fixture.js';

const temp = useTempDirs();

/** The pid of a process that has exited: a pidfile naming it is a crash's leftover. */
function deadPid(): number {
  const pid = spawnSync('true').pid;
  if (pid === undefined) throw new Error('could not run true');
  return pid;
}

function running(name: string, snapshot: string | undefined): InstanceStatus {
  return {
    name,
    state: 'running',
    pid: 4242,
    path: snapshot ? 'resume' : 'cold',
    snapshot,
    forwards: [],
    health: [],
    startedAt: 'now',
    stale: false,
    ready: true,
    busyWith: undefined,
    suspendedAt: undefined,
    suspendedOn: undefined,
  };
}

describe('listInstances', () => {
  it('finds none in a home that has no instances folder', async () => {
    expect(await listInstances(await temp())).toEqual([]);
  });

  it('lists every instance folder by name, skipping files and names that are not instance names', async () => {
    const home = await temp();
    await writeInstance(home, 'b');
    await writeInstance(home, 'a');
    await writeFile(join(home, 'instances', 'notes.txt'), 'not an instance');
    await mkdir(join(home, 'instances', '.hidden'));
    await mkdir(join(home, 'instances', 'has space'));
    expect((await listInstances(home)).map((instance) => instance.name)).toEqual(['a', 'b']);
  });

  it('says stopped, with no pid, path, snapshot or ports, when the pidfile names a process that is gone (a crash: stale)', async () => {
    const home = await temp();
    await writeInstance(home, 'crashed', { pid: deadPid(), state: { snapshot: 'k1', path: 'resume' } });
    await writeInstance(home, 'fresh');
    const [crashed, fresh] = await listInstances(home);
    expect(crashed).toEqual({
      name: 'crashed',
      state: 'stopped',
      pid: undefined,
      path: undefined,
      snapshot: undefined,
      forwards: [],
      health: [],
      startedAt: undefined,
      stale: true,
      ready: false,
    });
    expect(fresh).toMatchObject({ name: 'fresh', state: 'stopped', stale: false });
  });

  it('does not take a live process that is not this instance’s QEMU (a reused pid) for running', async () => {
    const home = await temp();
    await writeInstance(home, 'reused', { pid: process.pid, state: { snapshot: 'k1' } });
    const [reused] = await listInstances(home);
    expect(reused).toMatchObject({ name: 'reused', state: 'stopped', pid: undefined, snapshot: undefined, forwards: [], stale: true });
  });
});

describe('listSnapshots', () => {
  it('finds none in an empty store', async () => {
    expect(await listSnapshots(await temp(), [])).toEqual([]);
  });

  it("reads each published snapshot's manifest, not captures in progress nor set-aside ones", async () => {
    const home = await temp();
    await writeSnapshot(home, 'k2', { capturedBy: 'web', memoryMb: 512, createdAt: '2026-11-23T00:00:00.000Z' });
    await writeSnapshot(home, 'k1');
    await writeSnapshot(home, 'k1.set-aside-2026-11-22T00-00-00-000Z');
    await mkdir(join(home, 'snapshots', '.capture-1-2'));
    const snapshots = await listSnapshots(home, []);
    expect(snapshots.map((snapshot) => snapshot.key)).toEqual(['k1', 'k2']);
    expect(snapshots[1]).toMatchObject({
      key: 'k2',
      problem: undefined,
      capturedBy: 'web',
      createdAt: '2026-11-23T00:00:00.000Z',
      memoryMb: 512,
      qemuVersion: '10.0.2',
      accel: 'tcg',
      cpuModel: 'qemu64',
      usedBy: [],
    });
  });

  it('counts the blocks a snapshot takes on the disk, not the apparent size of its sparse memory file', async () => {
    const home = await temp();
    const paths = await writeSnapshot(home, 'k1');
    let allocated = 0;
    for (const entry of await readdir(paths.dir)) allocated += (await lstat(join(paths.dir, entry))).blocks * 512;
    const [snapshot] = await listSnapshots(home, []);
    expect(snapshot?.bytesOnDisk).toBe(allocated);
    expect(snapshot?.bytesOnDisk).toBeGreaterThan(0);
    expect(snapshot?.bytesOnDisk).toBeLessThan(MEMORY_BYTES);
  });

  it('lists a snapshot whose manifest cannot be read, with the reason', async () => {
    const home = await temp();
    const paths = await writeSnapshot(home, 'k1');
    await writeFile(paths.manifest, '{"format": 1}');
    await mkdir(join(home, 'snapshots', 'k2'));
    const [broken, empty] = await listSnapshots(home, []);
    expect(broken).toMatchObject({ key: 'k1', capturedBy: undefined, memoryMb: undefined });
    expect(broken?.problem).toContain('format 1');
    expect(empty).toMatchObject({ key: 'k2', problem: 'manifest.json is missing', bytesOnDisk: 0 });
  });

  it('counts as users only the running instances resumed from it', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    await writeSnapshot(home, 'k2');
    // A crashed clone's state.json still names k1, but nothing maps it any more.
    await writeInstance(home, 'crashed', { pid: deadPid(), state: { snapshot: 'k1' } });
    const instances = [...(await listInstances(home)), running('web-2', 'k1'), running('web-1', 'k1'), running('cold', undefined), running('other', 'k9')];
    const snapshots = await listSnapshots(home, instances);
    expect(snapshots.map((snapshot) => [snapshot.key, snapshot.usedBy])).toEqual([
      ['k1', ['web-2', 'web-1']],
      ['k2', []],
    ]);
  });
});

describe('runningFrom', () => {
  it('names the running instances of that snapshot only', () => {
    const stopped: InstanceStatus = { ...running('gone', 'k1'), state: 'stopped' };
    expect(runningFrom([running('a', 'k1'), stopped, running('b', 'k2'), running('c', undefined)], 'k1')).toEqual(['a']);
  });

  it('names a suspended instance whose disk overlay backs onto that snapshot: removing it would break the wake', () => {
    const suspended: InstanceStatus = { ...running('s', undefined), state: 'stopped', suspendedAt: 'then', suspendedOn: 'k1' };
    expect(runningFrom([running('a', 'k1'), suspended], 'k1')).toEqual(['a', 's (suspended)']);
    expect(runningFrom([suspended], 'k2')).toEqual([]);
  });
});

describe('snapshot-key files', () => {
  it('reads the key an instance last ran from or captured, and finds the instances that name a key', async () => {
    const home = await temp();
    await writeInstance(home, 'a', { snapshotKey: 'k1' });
    await writeInstance(home, 'b', { snapshotKey: 'k2' });
    await writeInstance(home, 'c', { snapshotKey: 'k1' });
    await writeInstance(home, 'never');
    await writeInstance(home, 'blank', { snapshotKey: '  ' });
    expect(await readSnapshotKey(instancePaths(home, 'a'))).toBe('k1');
    expect(await readSnapshotKey(instancePaths(home, 'never'))).toBeUndefined();
    expect(await readSnapshotKey(instancePaths(home, 'blank'))).toBeUndefined();
    expect(await instancesNoting(home, 'k1')).toEqual(['a', 'c']);
    expect(await instancesNoting(home, 'k3')).toEqual([]);
  });
});
