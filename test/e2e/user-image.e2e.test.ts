import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { projectRoot } from '../../adapters/support/project-root.js';
import { readBackingFile } from '../../adapters/qemu/qcow2-header.js';
import { ensureBootableDisk } from '../helpers/bootable-disk.js';
import { type FileServer, startFileServer } from '../helpers/file-server.js';
import { cli, E2E_HOME, type CliResult } from '../helpers/cli.js';
import { startKillingQemuAt } from '../helpers/qemu-kill.js';
import { secretFingerprint } from '../helpers/fingerprint.js';
import { expectCorruptStateFallsBack, expectedScaled, expectFirstStart, expectResumeWithNewSecrets, withGuestAgent } from '../helpers/real-guest.js';
import { removeSnapshotOf, snapshotDigest, snapshotOf } from '../helpers/store-check.js';
import { liveInstanceQemus } from '../helpers/instance-leftovers.js';
import { expectTraceMatches, stopAndCheckTrace } from '../helpers/trace-expect.js';

// A user's own cloud image and user-data, as a user with a downloaded cloud image gives them: a
// disk with a partition table and a bootloader, booted by the firmware (no kernel in the config),
// cloud-init on. No cloud image can be downloaded here, so the test makes one from the Debian
// profile's base.qcow2 (Debian 12, cloud-init on, never booted), and serves it from an HTTP server
// of its own on 127.0.0.1: the config names it by URL and digest, as a user names a cloud image
// (a local image.disk is covered by the demo guest in cold-boot.e2e.test.ts). The provisioning,
// port, health path and rotate command are the user's (test/fixtures/user-image). cloud-init runs
// on every cold boot: each starts from a fresh overlay.
const name = 'user-img';
const fixtures = join(projectRoot(), 'test', 'fixtures', 'user-image');
let configDir: string;
let config: string;
let disk: string;
let server: FileServer;
let digest: string;
/** Where the downloaded image is cached in the e2e home. */
let cached: string;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The image's cache folder and the partial downloads in the home's images/. */
async function imageCacheEntries(hex: string): Promise<string[]> {
  return (await readdir(homePaths(E2E_HOME).images)).filter((entry) => entry.includes(`url-sha256-${hex}`));
}

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
    digest = await sha256File(disk);
    cached = join(homePaths(E2E_HOME).images, `url-sha256-${digest}`, 'disk.qcow2');
    server = await startFileServer(disk);
    configDir = await mkdtemp(join(tmpdir(), 'warmvm-user-image-'));
    config = join(configDir, 'app.json');
    await writeFile(
      config,
      JSON.stringify({
        image: {
          url: server.url('/images/cloud.qcow2'),
          digest: `sha256:${digest}`,
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
    // The first start must download it: what an earlier run cached goes.
    for (const entry of await imageCacheEntries(digest)) await rm(join(homePaths(E2E_HOME).images, entry), { recursive: true, force: true });
  }, 1_800_000);

  afterAll(async () => {
    await cli(['stop', '--name', name]);
    await server?.close();
    if (configDir) await rm(configDir, { recursive: true, force: true });
  });

  it('downloads the image once (a connection cut midway is continued), cold boots through cloud-init, captures, resumes with the rotate command; a second start resumes from the cache with no request and other secrets', async () => {
    const size = (await stat(disk)).size;
    server.behaviour.cuts.push(Math.floor(size / 2));
    const { result: first, secrets, print: firstPrint } = await expectFirstStart(name, config, tokenFingerprint);
    // Cut at half, continued from what had arrived; the cache holds the image, nothing partial beside it.
    expect(server.requests.map((request) => request.status)).toEqual([200, 206]);
    expect(Number(/^bytes=(\d+)-$/.exec(server.requests[1]?.range ?? '')?.[1])).toBeGreaterThan(0);
    expect((await stat(cached)).size).toBe(size);
    expect(await imageCacheEntries(digest)).toEqual([`url-sha256-${digest}`]);
    expect(await readBackingFile(join(snapshotOf(name).dir, 'disk.qcow2'))).toBe(cached);
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
    // The resume found the image in the cache: the server saw nothing more.
    expect(server.requests).toHaveLength(2);
  }, 1_800_000);

  it('a wrong digest fails before any boot, naming both digests, and caches nothing', async () => {
    const before = server.requests.length;
    const wrong = 'f'.repeat(64);
    const wrongConfig = join(configDir, 'wrong-digest.json');
    const good = JSON.parse(await readFile(config, 'utf8')) as { image: Record<string, unknown> };
    await writeFile(wrongConfig, JSON.stringify({ ...good, image: { ...good.image, digest: `sha256:${wrong}` } }));
    const failed = await cli(['start', '--name', `${name}-bad`, '--config', wrongConfig, '--json']);
    expect(failed.exitCode, failed.stderr).toBe(1);
    expect(failed.json).toMatchObject({ failedState: 'start.image', error: { code: 'E_IMAGE_DIGEST' } });
    const message = (failed.json.error as { message: string }).message;
    expect(message).toContain(`sha256:${wrong}`);
    expect(message).toContain(`sha256:${digest}`);
    expect(server.requests.length).toBe(before + 1);
    expect(await imageCacheEntries(wrong)).toEqual([]);
    expect(await liveInstanceQemus(`${name}-bad`)).toEqual([]);
    await cli(['reset', '--name', `${name}-bad`]);
  }, 600_000);

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
    expect(await readBackingFile(instancePaths(E2E_HOME, name).overlay)).toBe(cached);
    expect(await snapshotDigest(name)).toBe(before);
    await stopAndCheckTrace(name);
  }, 1_800_000);
});
