import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { projectRoot } from '../../adapters/support/project-root.js';
import { readBackingFile } from '../../adapters/qemu/qcow2-header.js';
import { ensureBootableDisk } from '../helpers/bootable-disk.js';
import { cli, E2E_HOME, type CliResult } from '../helpers/cli.js';
import { startKillingQemuAt } from '../helpers/qemu-kill.js';
import { secretFingerprint } from '../helpers/fingerprint.js';
import { expectCorruptStateFallsBack, expectedScaled, expectFirstStart, expectResumeWithNewSecrets, withGuestAgent } from '../helpers/real-guest.js';
import { removeSnapshotOf, snapshotDigest } from '../helpers/store-check.js';
import { expectTraceMatches, stopAndCheckTrace } from '../helpers/trace-expect.js';

// A user's own cloud image and user-data, as a user with a downloaded cloud image gives them: a
// disk with a partition table and a bootloader, booted by the firmware (no kernel in the config),
// cloud-init on. No cloud image can be downloaded here, so the test makes one from the Debian
// profile's base.qcow2 (Debian 12, cloud-init on, never booted). The provisioning, port, health
// path and rotate command are the user's (test/fixtures/user-image). cloud-init runs on every cold
// boot: each starts from a fresh overlay.
const name = 'user-img';
const fixtures = join(projectRoot(), 'test', 'fixtures', 'user-image');
let configDir: string;
let config: string;
let disk: string;

async function tokenFingerprint(result: CliResult): Promise<string> {
  expect(result.json.health as { url: string }[]).toHaveLength(1);
  return await secretFingerprint(result, '/healthz', '/token-fingerprint');
}

describe("a user's cloud image (bootloader on the disk) with the user's cloud-init user-data, health check and rotate command", () => {
  beforeAll(async () => {
    const built = await cli(['guest', 'build', '--profile', 'debian', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
    const { key, base, kernel, initrd } = built.json as { key: string; base: string; kernel: string; initrd: string };
    disk = await ensureBootableDisk({
      rootImage: base,
      kernel,
      initrd,
      append: 'root=/dev/vda2 rw console=ttyS0 net.ifnames=0',
      out: join(E2E_HOME, 'user-image', `cloud-${key}.qcow2`),
    });
    configDir = await mkdtemp(join(tmpdir(), 'warmvm-user-image-'));
    config = join(configDir, 'app.json');
    await writeFile(
      config,
      JSON.stringify({
        image: {
          disk,
          format: 'qcow2',
          userData: join(fixtures, 'user-data'),
          metaData: join(fixtures, 'meta-data'),
        },
        memoryMb: 1024,
        cpus: 2,
        ports: [{ guest: 9090 }],
        health: [{ port: 9090, path: '/healthz', status: 200 }],
        rotation: { command: '/usr/local/bin/app-rotate', secrets: ['APP_TOKEN', 'DB_PASSWORD'] },
        readyMarker: 'app: ready',
        bounds: { bootSeconds: 600, healthSeconds: 300, rotateSeconds: 60, stopSeconds: 30 },
      }),
    );
    // Its config (the disk and user-data are this test's alone) has a snapshot of its own: none may decide the first path.
    await cli(['stop', '--name', name]);
    await removeSnapshotOf(name);
    await cli(['reset', '--name', name, '--snapshot']);
  }, 1_800_000);

  afterAll(async () => {
    await cli(['stop', '--name', name]);
    if (configDir) await rm(configDir, { recursive: true, force: true });
  });

  it('cold boots through cloud-init, captures, resumes with the rotate command; a second resume has other secrets', async () => {
    const { result: first, secrets, print: firstPrint } = await expectFirstStart(name, config, tokenFingerprint);
    expect(secrets).toMatch(/^APP_TOKEN=[0-9a-f]+\nDB_PASSWORD=[0-9a-f]+\n$/);
    // The user's meta-data reached cloud-init (the seed ISO warmvm wrote from the user's files).
    await withGuestAgent(name, async (qga) => {
      const instanceId = await qga.exec('/bin/cat', ['/var/lib/cloud/data/instance-id']);
      expect(instanceId.stdout.toString().trim(), instanceId.stderr.toString()).toBe('user-app-1');
      // The disk's own bootloader started the kernel: QEMU had no -kernel, syslinux passed its line.
      const kernelLine = await qga.exec('/bin/cat', ['/proc/cmdline']);
      expect(kernelLine.stdout.toString()).toContain('root=/dev/vda2');
      expect((await readFile(`/proc/${first.json.pid as number}/cmdline`, 'utf8')).split('\0')).not.toContain('-kernel');
    });
    await stopAndCheckTrace(name);

    await expectResumeWithNewSecrets(name, config, tokenFingerprint, firstPrint);
  }, 1_800_000);

  it('stop --suspend keeps its own disk overlay too: a file written to the disk and the secrets are there after the wake', async () => {
    const resumed = await cli(['start', '--name', name, '--config', config, '--json']);
    expect(resumed.json.outcome, resumed.stderr).toBe('healthy');
    const print = await tokenFingerprint(resumed);
    await withGuestAgent(name, async (qga) => {
      const wrote = await qga.exec('/bin/sh', ['-c', 'echo kept-on-disk > /var/tmp/suspend-proof && sync']);
      expect(wrote.exitCode, wrote.stderr.toString()).toBe(0);
    });
    const suspended = await cli(['stop', '--name', name, '--suspend', '--json']);
    expect(suspended.json.outcome, suspended.stderr).toBe('suspended');
    // The overlay went with the state: what backs it (the snapshot's frozen disk) is in use, and `status` says suspended.
    const status = await cli(['status', '--name', name, '--json']);
    expect(status.json).toMatchObject({ state: 'stopped', suspendedOn: resumed.json.snapshot });
    const woken = await cli(['start', '--name', name, '--config', config, '--json']);
    expect(woken.json, woken.stderr).toMatchObject({ outcome: 'healthy', path: 'wake', keptSecrets: true });
    expect(await tokenFingerprint(woken)).toBe(print);
    await withGuestAgent(name, async (qga) => {
      const read = await qga.exec('/bin/cat', ['/var/tmp/suspend-proof']);
      expect(read.stdout.toString().trim(), read.stderr.toString()).toBe('kept-on-disk');
    });
    await cli(['stop', '--name', name]);
  }, 1_800_000);

  it('falls back to a cold boot (cloud-init again, on a fresh overlay) when the stored state is corrupt', async () => {
    await expectCorruptStateFallsBack(name, config);
  }, 1_800_000);

  it("QEMU killed while the resume loads its state: the cold fallback boots the image itself, not the snapshot's disk", async () => {
    // Not running, whatever the case before left (a failed assertion skips its stop).
    await cli(['stop', '--name', name]);
    const before = await snapshotDigest(name);
    const killed = await startKillingQemuAt(name, ['--config', config], 'resume.incoming');
    expect(killed.result.json.outcome, killed.result.stderr).toBe('healthy');
    expect(killed.result.json).toMatchObject({ path: 'cold', fallbackReason: expect.stringContaining('QEMU exited') });
    await expectTraceMatches(name, await expectedScaled('fallback-qemu-killed-incoming.json'));
    // The resume had made an overlay over the snapshot's frozen disk; the cold boot must not run on it.
    expect(await readBackingFile(instancePaths(E2E_HOME, name).overlay)).toBe(disk);
    expect(await snapshotDigest(name)).toBe(before);
    await stopAndCheckTrace(name);
  }, 1_800_000);
});
