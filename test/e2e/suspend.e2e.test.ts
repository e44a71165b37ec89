import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { suspendPaths } from '../../adapters/instance/suspended.js';
import { QgaClient } from '../../adapters/qemu/protocol/qga-client.js';
import { cli, E2E_HOME, type CliResult } from '../helpers/cli.js';
import { secretFingerprint } from '../helpers/fingerprint.js';
import { caseConfig, removeSnapshotsCapturedBy } from '../helpers/store-check.js';

// `stop --suspend` on the real QEMU and demo guest, whose root is in RAM: a file written there
// before the suspend is there after the wake only if the RAM was kept.
const TIMEOUT = 300_000;
const name = 'suspend-main';

async function start(config: string): Promise<CliResult> {
  const result = await cli(['start', '--name', name, '--json', '--config', config]);
  expect(result.json.outcome, result.stderr + result.stdout).toBe('healthy');
  return result;
}

async function inGuest(script: string): Promise<string> {
  const qga = await QgaClient.connect(instancePaths(E2E_HOME, name).qgaSocket, { timeoutMs: 10_000 });
  try {
    const ran = await qga.exec('/bin/sh', ['-c', script], { timeoutMs: 60_000 });
    expect(ran.exitCode, ran.stderr.toString()).toBe(0);
    return ran.stdout.toString().trim();
  } finally {
    await qga.close();
  }
}

async function suspend(): Promise<CliResult> {
  const result = await cli(['stop', '--name', name, '--suspend', '--json']);
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.json.outcome).toBe('suspended');
  return result;
}

describe('suspend on real QEMU', () => {
  beforeAll(async () => {
    await cli(['stop', '--name', name]);
    await cli(['reset', '--name', name, '--snapshot']);
    await removeSnapshotsCapturedBy([name]);
  }, 120_000);

  afterAll(async () => {
    await cli(['stop', '--name', name]);
    await cli(['reset', '--name', name, '--snapshot']);
    await removeSnapshotsCapturedBy([name]);
  });

  it(
    'keeps the guest where it was: its RAM and secrets; a changed config sets the state aside with its reason; reset drops it',
    async () => {
      const paths = instancePaths(E2E_HOME, name);
      const kept = suspendPaths(paths.dir);
      const config = await caseConfig(name);
      const first = await start(config);
      const print = await secretFingerprint(first);
      const token = randomBytes(8).toString('hex');
      await inGuest(`echo ${token} > /suspend-proof`);

      const suspended = await suspend();
      expect(suspended.json.dir).toBe(kept.dir);
      expect(existsSync(kept.record) && existsSync(kept.state) && existsSync(kept.secrets)).toBe(true);
      // Stopped, and its secrets are the suspended state's now, not the instance's.
      expect(existsSync(paths.pidFile) || existsSync(paths.secretsFile)).toBe(false);
      const again = await cli(['stop', '--name', name, '--suspend']);
      expect(again.exitCode).not.toBe(0);
      expect(again.stderr).toContain('is suspended already');

      const woken = await start(config);
      expect(woken.json).toMatchObject({ path: 'wake', rotated: false, keptSecrets: true, secretsFile: paths.secretsFile });
      expect(woken.stdout + woken.stderr).not.toContain('WARNING');
      expect(await secretFingerprint(woken)).toBe(print);
      expect(await inGuest('cat /suspend-proof')).toBe(token);
      expect(existsSync(kept.dir)).toBe(false);

      // The config changed while suspended: the state is set aside, with the change named, and the start takes its usual path.
      await suspend();
      const changed = await start(await caseConfig(name, { memoryMb: 320 }));
      expect(changed.json.path).not.toBe('wake');
      const warnings = changed.json.warnings as string[];
      expect(warnings.join('\n')).toContain('the suspended state was set aside: the config changed since the suspend: memoryMb 256 → 320');
      const asides = (await readdir(paths.dir)).filter((entry) => entry.startsWith('suspended.aside-'));
      expect(asides).toHaveLength(1);
      const reason = await readFile(join(paths.dir, asides[0] as string, 'reason.txt'), 'utf8');
      expect(reason).toContain('memoryMb 256 → 320');
      expect(existsSync(join(paths.dir, asides[0] as string, 'state.raw'))).toBe(true);
      expect(await secretFingerprint(changed)).not.toBe(print);

      const stopped = await cli(['stop', '--name', name]);
      expect(stopped.exitCode, stopped.stderr).toBe(0);
      const reset = await cli(['reset', '--name', name]);
      expect(reset.exitCode, reset.stderr).toBe(0);
      expect(existsSync(paths.dir)).toBe(false);
    },
    TIMEOUT,
  );
});
