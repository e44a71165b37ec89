import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';
import { writeInstance, writeSnapshot } from '../adapters/vm/home-fixture.js';

// The built CLI as a real process (npm test builds first), on a temp home with no QEMU running.
const temp = useTempDirs();

function deadPid(): number {
  const pid = spawnSync('true').pid;
  if (pid === undefined) throw new Error('could not run true');
  return pid;
}

describe('warmvm list', () => {
  it('with --json, prints every instance and every snapshot, none in use while nothing runs', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1', { capturedBy: 'web-1', memoryMb: 256 });
    await writeSnapshot(home, 'k2', { capturedBy: 'db', memoryMb: 1024 });
    await writeInstance(home, 'web-2', { pid: deadPid(), state: { snapshot: 'k1' }, snapshotKey: 'k1' });
    await writeInstance(home, 'web-1', { snapshotKey: 'k1' });
    const result = await cli(['list', '--json'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    expect(result.json.instances).toEqual([
      { name: 'web-1', state: 'stopped', pid: null, path: null, snapshot: null, ports: [], health: [], startedAt: null, stale: false, ready: false, suspendedAt: null },
      { name: 'web-2', state: 'stopped', pid: null, path: null, snapshot: null, ports: [], health: [], startedAt: null, stale: true, ready: false, suspendedAt: null },
    ]);
    const snapshots = result.json.snapshots as Record<string, unknown>[];
    expect(snapshots.map((snapshot) => [snapshot.key, snapshot.capturedBy, snapshot.memoryMb, snapshot.usedBy])).toEqual([
      ['k1', 'web-1', 256, []],
      ['k2', 'db', 1024, []],
    ]);
    expect(snapshots[0]).toMatchObject({ createdAt: '2026-11-22T00:00:00.000Z', qemuVersion: '10.0.2', accel: 'tcg', cpuModel: 'qemu64', problem: null });
    expect(snapshots[0]?.bytesOnDisk).toBeGreaterThan(0);
  });

  it('prints a table of the instances, then a line per snapshot', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1', { capturedBy: 'web-1' });
    await writeInstance(home, 'web-1', { pid: deadPid(), state: {} });
    const result = await cli(['list'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME +STATE +PID +PATH +SNAPSHOT +PORTS \(host→guest\) +HEALTH$/);
    expect(lines[1]).toMatch(/^web-1 +stopped +— +— +— +— +—$/);
    expect(lines[2]).toContain('web-1: a QEMU that died left its files; "warmvm stop --name <name>" cleans them');
    expect(lines).toContain('snapshots:');
    expect(lines.at(-1)).toMatch(
      /^ {2}k1 {2}256 MB, tcg, qemu64, QEMU 10\.0\.2, captured by "web-1" at 2026-11-22T00:00:00\.000Z; [\d.]+ [KMG]?B on disk; used by no running instance$/,
    );
  });

  it('says so when the home has no instances and no snapshots', async () => {
    const home = await temp();
    const result = await cli(['list'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(`no instances in ${join(home, 'instances')}\n\nno snapshots`);
    const json = await cli(['list', '--json'], { WARMVM_HOME: home });
    expect(json.json).toEqual({ instances: [], snapshots: [] });
  });
});

describe('warmvm status', () => {
  it('with --json, gives snapshot null for an instance that is not running', async () => {
    const home = await temp();
    await writeInstance(home, 'web-1', { pid: deadPid(), state: { snapshot: 'k1' }, snapshotKey: 'k1' });
    const result = await cli(['status', '--name', 'web-1', '--json'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    expect(result.json).toMatchObject({ name: 'web-1', state: 'stopped', snapshot: null, forwards: [], stale: true });
  });
});
