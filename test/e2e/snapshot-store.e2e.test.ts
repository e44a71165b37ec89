import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { readPidFile } from '../../adapters/qemu/process.js';
import { cli, E2E_HOME, type CliResult } from '../helpers/cli.js';
import { liveInstanceQemus } from '../helpers/instance-leftovers.js';
import { caseConfig } from '../helpers/store-check.js';

// `warmvm snapshot ls | rm | prune` on the real QEMU and demo guest. Prune looks at the whole
// store, so this runs on a home of its own (the shared home's guest images linked in, built once):
// it never removes another test file's snapshots.
const TIMEOUT = 300_000;
const name = 'snap-store';
let home = '';

async function run(args: string[]): Promise<CliResult> {
  return await cli(args, { WARMVM_HOME: home });
}

async function start(config: string): Promise<CliResult> {
  const result = await run(['start', '--name', name, '--json', '--config', config]);
  expect(result.json.outcome, result.stderr + result.stdout).toBe('healthy');
  return result;
}

async function stop(): Promise<void> {
  const stopped = await run(['stop', '--name', name, '--json']);
  expect(stopped.exitCode, stopped.stderr + stopped.stdout).toBe(0);
}

describe('snapshot ls, rm and prune on real QEMU', () => {
  beforeAll(async () => {
    const built = await cli(['guest', 'build', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
    home = await mkdtemp(join(tmpdir(), 'wvm-ss-'));
    await symlink(homePaths(E2E_HOME).images, homePaths(home).images);
    // The accelerator's verdict too, when the shared home has one: no second probe.
    const probe = join(E2E_HOME, 'accel-probe.json');
    if (existsSync(probe)) await copyFile(probe, join(home, 'accel-probe.json'));
  }, 900_000);

  afterAll(async () => {
    if (home === '') return;
    await run(['stop', '--name', name]);
    const pid = await readPidFile(instancePaths(home, name).pidFile);
    if (pid !== undefined && (await liveInstanceQemus(name, home)).includes(pid)) process.kill(pid, 'SIGKILL');
    await rm(home, { recursive: true, force: true });
  });

  it(
    "lists the running instance's snapshot as used by it, refuses to rm it, prunes only the old config's; after a stop rm removes it and the next start cold-boots",
    async () => {
      // The instance's first config, then a changed one: the first config's snapshot stays behind, unused.
      const old = await start(await caseConfig('snapshot-store-old'));
      expect(old.json.path).toBe('cold+capture+resume');
      const oldKey = old.json.snapshot as string;
      await stop();
      const first = await start(await caseConfig('snapshot-store', { memoryMb: 288 }));
      expect(first.json.path).toBe('cold+capture+resume');
      const key = first.json.snapshot as string;
      expect(key).not.toBe(oldKey);

      // ls: both, the current one used by the running instance, with what it was captured with.
      const ls = await run(['snapshot', 'ls', '--json']);
      expect(ls.exitCode, ls.stderr).toBe(0);
      const rows = JSON.parse(ls.stdout) as Record<string, unknown>[];
      expect(rows.map((row) => row.key).sort()).toEqual([key, oldKey].sort());
      const row = rows.find((entry) => entry.key === key);
      expect(row).toMatchObject({ current: true, capturedBy: name, memoryMb: 288, accel: first.json.accel, usedBy: [name], problem: null, capturingPid: null, setAside: [] });
      expect(row?.machineType).toMatch(/^pc-q35-\d+\.\d+$/);
      expect(row?.qemuVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(row?.bytesOnDisk).toBeGreaterThan(0);
      expect(rows.find((entry) => entry.key === oldKey)).toMatchObject({ capturedBy: name, usedBy: [] });
      const table = await run(['snapshot', 'ls']);
      expect(table.stdout).toMatch(new RegExp(`\\n${key} +${name} .* ${name}\\n`));

      // rm of the snapshot in use: refused, naming the instance and the fix; nothing removed.
      const refused = await run(['snapshot', 'rm', key, '--json']);
      expect(refused.exitCode).toBe(1);
      expect(refused.json).toMatchObject({ outcome: 'failed', error: { code: 'E_SNAPSHOT_IN_USE', message: expect.stringContaining(`used by running ${name}`) } });
      expect((refused.json.error as { hint: string }).hint).toContain(`"warmvm stop --name ${name}"`);
      expect((refused.json.error as { hint: string }).hint).toContain('--force');
      expect(existsSync(join(homePaths(home).snapshots, key))).toBe(true);

      // prune: the old config's snapshot goes (an older one of the same capturing instance); the one in use stays.
      const pruned = await run(['snapshot', 'prune', '--keep', '0', '--json']);
      expect(pruned.exitCode, pruned.stderr).toBe(0);
      expect((pruned.json.removed as { name: string }[]).map((entry) => entry.name)).toEqual([oldKey]);
      expect((pruned.json.kept as { name: string; why: string; usedBy: string[] }[]).map((entry) => [entry.name, entry.why, entry.usedBy])).toEqual([
        [key, `used by running ${name}`, [name]],
      ]);
      expect(pruned.json.bytesFreed).toBeGreaterThan(0);
      expect(existsSync(join(homePaths(home).snapshots, oldKey))).toBe(false);
      expect(existsSync(join(homePaths(home).snapshots, key))).toBe(true);
      const status = await run(['status', '--name', name, '--json']);
      expect(status.json).toMatchObject({ state: 'running', health: [{ status: 200 }] });

      // Stopped, nothing uses it: rm removes it, and the next start of its config cold-boots.
      await stop();
      const removed = await run(['snapshot', 'rm', key, '--json']);
      expect(removed.exitCode, removed.stderr + removed.stdout).toBe(0);
      expect(removed.json).toMatchObject({ removed: [{ key, usedBy: [] }] });
      expect(existsSync(join(homePaths(home).snapshots, key))).toBe(false);
      expect(JSON.parse((await run(['snapshot', 'ls', '--json'])).stdout)).toEqual([]);
      const again = await start(await caseConfig('snapshot-store', { memoryMb: 288 }));
      expect(again.json.path).toBe('cold+capture+resume');
      expect(again.json.snapshot).toBe(key);
      await stop();
      expect(await liveInstanceQemus(name, home)).toEqual([]);
    },
    TIMEOUT,
  );
});
