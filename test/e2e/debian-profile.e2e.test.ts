import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../adapters/instance/paths.js';
import { type ImageManifest, TITLE_ANNOTATION } from '../../adapters/oci/types.js';
import { LAYER_MEDIA_TYPE, RAW_LAYER_MEDIA_TYPE, ROLE_ANNOTATION } from '../../adapters/snapshot/artifact.js';
import { blobPath } from '../../adapters/snapshot/pack.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { secretFingerprint, sha256 } from '../helpers/fingerprint.js';
import { expectCorruptStateFallsBack, expectFirstStart, expectResumeWithNewSecrets, startHealthy, withGuestAgent } from '../helpers/real-guest.js';
import { removeSnapshotOf } from '../helpers/store-check.js';
import { stopAndCheckTrace } from '../helpers/trace-expect.js';

// The Debian profile end to end on the real QEMU: built with debootstrap and provisioned through
// cloud-init (cached in the e2e home across runs of the same inputs), its workload in a container,
// secrets rotated from the VM into a folder the container shares, its PID 1 told through a fifo.
const name = 'deb-main';
let configDir: string;
let config: string;

const fingerprint = (result: CliResult): Promise<string> => secretFingerprint(result);
const execFileAsync = promisify(execFile);

describe('the Debian profile on real QEMU', () => {
  beforeAll(async () => {
    configDir = await mkdtemp(join(tmpdir(), 'warmvm-debian-'));
    config = join(configDir, 'debian.json');
    await writeFile(config, JSON.stringify({ image: { profile: 'debian' }, settings: { GREETING: "hello, it's the host" } }));
    // This config (the profile with this test's own settings) has a snapshot of its own: none may decide the first path.
    await cli(['stop', '--name', name]);
    await removeSnapshotOf(name);
    await cli(['reset', '--name', name, '--snapshot']);
    const built = await cli(['guest', 'build', '--profile', 'debian', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
    expect(built.json).toMatchObject({ profile: 'debian', outcome: expect.stringMatching(/^(built|cached)$/) });
  }, 1_800_000);

  afterAll(async () => {
    await cli(['stop', '--name', name]);
    await rm(configDir, { recursive: true, force: true });
  });

  it('provisioned through cloud-init at build, it cold boots, captures, resumes with the secrets rotated from the VM into the container; a second resume has other secrets', async () => {
    const { print: firstPrint } = await expectFirstStart(name, config, fingerprint);
    expect(firstPrint).not.toBe(sha256(`API_KEY=${'0'.repeat(64)}\n`));
    // The guest read the runtime disk (warmvm's own ISO) when it booted; the container sees it too.
    await withGuestAgent(name, async (qga) => {
      const expectedSettings = `GREETING='hello, it'\\''s the host'\nWARMVM_INSTANCE='${name}'\n`;
      const inGuest = await qga.exec('/bin/cat', ['/run/warmvm/settings.env']);
      expect(inGuest.stdout.toString(), inGuest.stderr.toString()).toBe(expectedSettings);
      const inContainer = await qga.exec('/usr/bin/docker', ['exec', 'warmvm-workload', 'cat', '/run/warmvm-host/settings.env'], { timeoutMs: 60_000 });
      expect(inContainer.stdout.toString(), inContainer.stderr.toString()).toBe(expectedSettings);
    });
    await stopAndCheckTrace(name);

    await expectResumeWithNewSecrets(name, config, fingerprint, firstPrint);
  }, 1_800_000);

  it("the rotate hook restarts only the container's server: no docker exec, the container's PID 1 the same process", async () => {
    const result = await startHealthy(name, config);
    await withGuestAgent(name, async (qga) => {
      const run = async (path: string, args: string[], input?: string): Promise<string> => {
        const out = await qga.exec(path, args, { timeoutMs: 60_000, ...(input === undefined ? {} : { inputData: input }) });
        expect(out.exitCode, `${path} ${args.join(' ')}: ${out.stderr.toString()}`).toBe(0);
        return out.stdout.toString().trim();
      };
      const container = () => run('/usr/bin/docker', ['inspect', '-f', '{{.State.Pid}} {{.State.StartedAt}} {{.RestartCount}}', 'warmvm-workload']);
      // The server (busybox httpd) is PID 1's child: its pid in the VM, found by its parent.
      const server = async (supervisor: string) =>
        run('/bin/sh', ['-c', `for s in /proc/[0-9]*/stat; do read -r p c st pp rest <"$s" && [ "$pp" = ${supervisor} ] && [ "$c" = "(busybox)" ] && echo "$p"; done; true`]);
      const before = await container();
      const supervisor = before.split(' ')[0] as string;
      const cmdline = await run('/bin/cat', [`/proc/${supervisor}/cmdline`]);
      expect(cmdline.replaceAll('\0', ' ')).toContain('health-server supervise');
      const serverBefore = await server(supervisor);
      expect(serverBefore).toMatch(/^\d+$/);
      const since = await run('/bin/date', ['+%s']);
      const input = `API_KEY=${'5a'.repeat(32)}\n`;
      await run('/usr/local/bin/warmvm-rotate', [], input);
      const until = String(Number(await run('/bin/date', ['+%s'])) + 1);
      expect(await secretFingerprint(result)).toBe(sha256(input));
      expect(await container()).toBe(before);
      const serverAfter = await server(supervisor);
      expect(serverAfter).toMatch(/^\d+$/);
      expect(serverAfter).not.toBe(serverBefore);
      const execs = await run('/usr/bin/docker', ['events', '--since', since, '--until', until, '--filter', 'event=exec_create', '--format', '{{.Action}}']);
      expect(execs).toBe('');
    });
    await stopAndCheckTrace(name);
  }, 1_800_000);

  it("sets the guest's clock without util-linux's wait: the agent's /sbin/hwclock is busybox's, the RTC kept in UTC", async () => {
    await startHealthy(name, config);
    await withGuestAgent(name, async (qga) => {
      const run = async (path: string, args: string[]): Promise<string> => {
        const out = await qga.exec(path, args, { timeoutMs: 60_000 });
        expect(out.exitCode, `${path} ${args.join(' ')}: ${out.stderr.toString()}`).toBe(0);
        return out.stdout.toString().trim();
      };
      // util-linux's hwclock -w waits for a second boundary (0.5-1 s), the agent answering nothing meanwhile.
      expect(await run('/bin/readlink', ['/sbin/hwclock'])).toBe('/bin/busybox');
      expect((await run('/bin/cat', ['/etc/adjtime'])).split('\n').at(-1)).toBe('UTC');
      // An hour off, then set again from the host: guest-set-time sets it and runs that hwclock.
      await qga.setTime(BigInt(Date.now() + 3_600_000) * 1_000_000n, { timeoutMs: 30_000 });
      await qga.setTime(undefined, { timeoutMs: 30_000 });
      expect(Math.abs(Number(await run('/bin/date', ['+%s'])) - Date.now() / 1000)).toBeLessThan(30);
    });
    await stopAndCheckTrace(name);
  }, 1_800_000);

  it('its disk is compressed clusters that travel as they are: exported, imported into an empty home, linked into place, and resumed there', async () => {
    await startHealthy(name, config);
    expect((await cli(['stop', '--name', name])).exitCode).toBe(0);
    const built = (await cli(['guest', 'build', '--profile', 'debian', '--json'])).json as { disk: string };
    const info = JSON.parse((await execFileAsync('qemu-img', ['info', '--output=json', built.disk])).stdout) as { 'format-specific': { data: { 'compression-type': string } } };
    expect(info['format-specific'].data['compression-type']).toBe('zstd');

    const home = await mkdtemp(join(tmpdir(), 'wvm-deb-'));
    try {
      const file = join(home, 'debian.oci.tar');
      const exported = await cli(['snapshot', 'export', file, '--name', name, '--json']);
      expect(exported.exitCode, exported.stderr).toBe(0);
      const manifest = JSON.parse(
        (await execFileAsync('tar', ['-xOf', file, `blobs/sha256/${String(exported.json.digest).slice('sha256:'.length)}`], { maxBuffer: 1 << 20 })).stdout,
      ) as ImageManifest;
      const media = Object.fromEntries(manifest.layers.map((layer) => [`${layer.annotations?.[ROLE_ANNOTATION]}:${layer.annotations?.[TITLE_ANNOTATION]}`, layer.mediaType]));
      expect(media['image:disk.qcow2']).toBe(RAW_LAYER_MEDIA_TYPE);
      expect(media['memory:mem.raw']).toBe(LAYER_MEDIA_TYPE);

      const imported = await cli(['snapshot', 'import', file, '--json'], { WARMVM_HOME: home });
      expect(imported.exitCode, imported.stderr).toBe(0);
      const [imageDir] = (await readdir(homePaths(home).images)).filter((entry) => entry.startsWith('debian-'));
      const disk = await stat(join(homePaths(home).images, imageDir as string, 'disk.qcow2'));
      const rawLayer = manifest.layers.find((layer) => layer.mediaType === RAW_LAYER_MEDIA_TYPE);
      // The blob is the image file: unpacking it was a link, not 1 GB written.
      expect(disk.ino).toBe((await stat(blobPath(home, rawLayer?.digest ?? 'sha256:missing'))).ino);
      const started = await cli(['start', '--name', 'deb-imported', '--json', '--config', config], { WARMVM_HOME: home });
      expect(started.json.outcome, started.stderr).toBe('healthy');
      expect(started.json.path).toBe('resume');
      expect((await cli(['stop', '--name', 'deb-imported'], { WARMVM_HOME: home })).exitCode).toBe(0);
    } finally {
      await cli(['stop', '--name', 'deb-imported'], { WARMVM_HOME: home });
      await rm(home, { recursive: true, force: true });
    }
  }, 1_800_000);

  it('falls back to a cold boot when the stored state is corrupt, and ends healthy', async () => {
    await expectCorruptStateFallsBack(name, config);
  }, 1_800_000);
});
