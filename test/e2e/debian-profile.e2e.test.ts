import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  it('falls back to a cold boot when the stored state is corrupt, and ends healthy', async () => {
    await expectCorruptStateFallsBack(name, config);
  }, 1_800_000);
});
