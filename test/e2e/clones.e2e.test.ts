import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { readInstanceState } from '../../adapters/instance/state.js';
import { QgaClient } from '../../adapters/qemu/protocol/qga-client.js';
import { readTraceFile } from '../../adapters/trace/file.js';
import { cli, E2E_HOME, type CliResult } from '../helpers/cli.js';
import { secretFingerprint } from '../helpers/fingerprint.js';
import { liveInstanceQemus } from '../helpers/instance-leftovers.js';
import { caseConfig, removeSnapshotsCapturedBy, snapshotDigest, snapshotOf } from '../helpers/store-check.js';
import { expectTraceMatches, stopAndCheckTrace } from '../helpers/trace-expect.js';

// Many instances from one capture, on the real QEMU and demo guest: three starts of one config at
// once capture once and all end healthy, each its own QEMU, ports and secrets, all mapping one
// memory file that none of them changes.
const TIMEOUT = 300_000;
const names = ['clone-a', 'clone-b', 'clone-c', 'clone-d'];

async function start(name: string, config: string): Promise<CliResult> {
  const result = await cli(['start', '--name', name, '--json', '--config', config]);
  expect(result.json.outcome, result.stderr + result.stdout).toBe('healthy');
  return result;
}

async function healthOf(name: string): Promise<number | undefined> {
  const status = await cli(['status', '--name', name, '--json']);
  return (status.json.health as { status?: number }[] | undefined)?.[0]?.status;
}

describe('clones of one snapshot on real QEMU', () => {
  let config = '';

  beforeAll(async () => {
    for (const name of names) {
      await cli(['stop', '--name', name]);
      await cli(['reset', '--name', name, '--snapshot']);
    }
    await removeSnapshotsCapturedBy(names);
    config = await caseConfig('clones');
    const built = await cli(['guest', 'build', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
  }, 900_000);

  afterAll(async () => {
    for (const name of names) await cli(['stop', '--name', name]);
    await removeSnapshotsCapturedBy(names);
  });

  it(
    'three starts of one config at once: one capture, three healthy clones on their own ports and secrets, one snapshot left unchanged',
    async () => {
      const [a, b, c] = names as [string, string, string];
      const results = await Promise.all([a, b, c].map((name) => start(name, config)));
      // One of them captured; the other two waited for its capture and resumed it.
      const paths = results.map((result) => result.json.path).sort();
      expect(paths).toEqual(['cold+capture+resume', 'resume', 'resume']);
      for (const [index, name] of [a, b, c].entries()) {
        const entries = await readTraceFile(instancePaths(E2E_HOME, name).traceFile);
        const waited = entries.some((entry) => entry.state === 'start.awaitingCapture');
        expect(waited, `${name}: ${results[index]?.json.path}`).toBe(results[index]?.json.path === 'resume');
      }
      const key = snapshotOf(a).key;
      for (const name of [b, c]) expect(snapshotOf(name).key).toBe(key);

      // Each its own QEMU, host port and secrets.
      const pids = results.map((result) => result.json.pid as number);
      expect(new Set(pids).size).toBe(3);
      for (const name of [a, b, c]) expect(await liveInstanceQemus(name)).toHaveLength(1);
      const urls = results.map((result) => (result.json.health as { url: string }[])[0]?.url);
      expect(new Set(urls).size).toBe(3);
      const prints = await Promise.all(results.map((result) => secretFingerprint(result)));
      expect(new Set(prints).size).toBe(3);

      // Every clone maps the snapshot's memory file read-only; none of them changes it.
      const before = await snapshotDigest(a);
      for (const name of [a, b, c]) {
        const state = await readInstanceState(instancePaths(E2E_HOME, name).stateFile);
        expect(state?.snapshot, name).toBe(key);
        const maps = await readFile(`/proc/${state?.pid}/maps`, 'utf8');
        expect(maps, name).toContain(snapshotOf(a).memory);
      }
      const qga = await QgaClient.connect(instancePaths(E2E_HOME, b).qgaSocket, { timeoutMs: 10_000 });
      try {
        const wrote = await qga.exec('/bin/sh', ['-c', 'dd if=/dev/zero of=/dirty bs=1M count=32 2>/dev/null'], { timeoutMs: 60_000 });
        expect(wrote.exitCode, wrote.stderr.toString()).toBe(0);
      } finally {
        await qga.close();
      }
      expect(await snapshotDigest(a)).toBe(before);

      // `list` shows the three with their one snapshot.
      const list = await cli(['list', '--json']);
      expect(list.exitCode, list.stderr).toBe(0);
      const listed = (list.json.instances as { name: string; state: string; snapshot?: string | null }[]).filter((entry) => [a, b, c].includes(entry.name));
      expect(listed.map((entry) => [entry.name, entry.state, entry.snapshot]).sort()).toEqual([
        [a, 'running', key],
        [b, 'running', key],
        [c, 'running', key],
      ]);
      const snapshot = (list.json.snapshots as { key: string; usedBy: string[] }[]).find((entry) => entry.key === key);
      expect(snapshot?.usedBy.slice().sort()).toEqual([a, b, c]);

      // Stopping one leaves the others healthy.
      await stopAndCheckTrace(a);
      expect(await healthOf(b)).toBe(200);
      expect(await healthOf(c)).toBe(200);

      // A changed config captures a snapshot of its own; the old clones run on, untouched.
      const bigger = await caseConfig('clones-bigger', { memoryMb: 288 });
      const d = names[3] as string;
      const other = await start(d, bigger);
      expect(other.json).toMatchObject({ path: 'cold+capture+resume' });
      expect(snapshotOf(d).key).not.toBe(key);
      expect(await healthOf(b)).toBe(200);
      expect(await healthOf(c)).toBe(200);
      expect(await snapshotDigest(b)).toBe(before);

      // A later start of the first config is a plain resume of the same snapshot.
      const again = await start(a, config);
      expect(again.json).toMatchObject({ path: 'resume' });
      await expectTraceMatches(a, 'resume.json');
      expect(snapshotOf(a).key).toBe(key);
      for (const name of [a, b, c, d]) await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );
});
