import { createServer, type Server } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getStatus } from '../../adapters/vm/health-probe.js';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { startFileServer } from '../helpers/file-server.js';
import { isProcessAlive } from '../../adapters/support/process-alive.js';
import { QgaClient } from '../../adapters/qemu/protocol/qga-client.js';
import { findFreePort } from '../../adapters/instance/ports.js';
import { cli, E2E_HOME, parse, startCli } from '../helpers/cli.js';
import { expectColdMemory, expectNoRuntimeFiles, liveInstanceQemus } from '../helpers/instance-leftovers.js';
import { captureLocks, caseConfig, caseVariantConfig, removeSnapshotOf, snapshotOf } from '../helpers/store-check.js';
import { readBackingFile } from '../../adapters/qemu/qcow2-header.js';
import { DEMO_APPEND } from '../../adapters/guest/boot-files.js';
import { DEMO_ROTATION } from '../../adapters/spec/vm.js';
import { expectedTracePath, expectTraceMatches, stopAndCheckTrace } from '../helpers/trace-expect.js';

// A real QEMU, the real demo guest, the real CLI. Cold boots take ~6 s under TCG each.
const BOOT_TIMEOUT = 240_000;

/** No QEMU, runtime file, cold RAM file or capture lock of the instance is left. */
async function expectNoInstanceLeft(name: string, pid: number | undefined): Promise<void> {
  if (pid !== undefined) expect(await isProcessAlive(pid)).toBe(false);
  expect(await liveInstanceQemus(name)).toEqual([]);
  expectNoRuntimeFiles(name);
  expectColdMemory(name, false);
  expect(await captureLocks()).toEqual([]);
}

describe('cold boot of the demo guest on real QEMU', () => {
  const names = ['e2e-cold', 'e2e-ctrlc', 'e2e-ctrlc-download', 'e2e-lock', 'e2e-port', 'e2e-unhealthy', 'e2e-marker', 'e2e-disk'];
  let demo: { kernel: string; initrd: string };

  beforeAll(async () => {
    // A run killed midway may have left instances in the shared home; no snapshot may decide a path.
    // Each case runs its own config (caseConfig), so no other test's snapshot can either.
    for (const name of names) {
      await cli(['stop', '--name', name]);
      await removeSnapshotOf(name);
      await cli(['reset', '--name', name, '--snapshot']);
    }
    // Builds the guest once for every e2e test (cached in the shared home).
    const built = await cli(['guest', 'build', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
    demo = built.json as { kernel: string; initrd: string };
  }, 900_000);

  afterAll(async () => {
    for (const name of names) await cli(['stop', '--name', name]);
  });

  it(
    'starts healthy, answers HTTP and the guest agent, reports running, and stops clean',
    async () => {
      const name = 'e2e-cold';
      const started = await cli(['start', '--cold', '--name', name, '--config', await caseConfig(name), '--json']);
      expect(started.exitCode, started.stderr + started.stdout).toBe(0);
      expect(started.json).toMatchObject({ name, outcome: 'healthy', path: 'cold' });
      await expectTraceMatches(name, 'cold.json');
      // The CLI's check, a real process, tells a cold start from the resume CI expects: exit 1, with the diff.
      const check = await cli(['trace', 'check', expectedTracePath('resume.json'), '--name', name]);
      expect(check.exitCode, check.stderr).toBe(1);
      expect(check.stdout).toContain('trace check FAILED');
      expect(check.stdout).toMatch(/> +5 {2}start\.resume +#5 .*start\.coldBoot +<- diverges here/);
      const seconds = started.json.seconds as Record<string, number>;
      for (const phase of ['total', 'preflight', 'image', 'accelerator', 'coldBoot.launching', 'coldBoot.booting', 'coldBoot.rotating', 'coldBoot.probing'])
        expect(seconds[phase], phase).toBeTypeOf('number');
      const health = started.json.health as { url: string; status: number }[];
      expect(health).toHaveLength(1);
      expect(health[0]?.status).toBe(200);

      // The agent came up only once the workload's supervisor had: a cold boot rotates when the agent
      // answers, and a hook run before the supervisor started a server that the supervisor then replaced.
      // (The agent's own marker may still be on its way: it answers before init sees it listening.)
      const serial = readFileSync(instancePaths(E2E_HOME, name).serialLog, 'utf8');
      expect(serial.split('warmvm: agent up')[0]).toContain('warmvm: workload healthy');

      // QEMU runs on, detached, after the CLI has exited, its RAM in the instance's memory file (a cold boot's).
      expectColdMemory(name, true);
      const answer = await getStatus(health[0]?.url as string, 5_000);
      expect(answer.status).toBe(200);

      const status = await cli(['status', '--name', name, '--json']);
      // Cold-booted: its RAM is its own, mapped from no snapshot.
      expect(status.json).toMatchObject({ name, state: 'running', pid: started.json.pid, path: 'cold', snapshot: null });
      expect(status.json.health).toEqual([{ url: health[0]?.url, status: 200, expectStatus: 200 }]);

      // The real guest agent runs a real command.
      const qga = await QgaClient.connect(instancePaths(E2E_HOME, name).qgaSocket, { timeoutMs: 10_000 });
      try {
        const result = await qga.exec('/bin/sh', ['-c', 'read line; echo "got:$line"; uname -s'], { inputData: 'hello\n', timeoutMs: 10_000 });
        expect(result.exitCode).toBe(0);
        expect(result.stdout.toString()).toBe('got:hello\nLinux\n');
      } finally {
        await qga.close();
      }

      const stopped = await stopAndCheckTrace(name);
      expect(stopped).toMatchObject({ pid: started.json.pid });
      await expectNoInstanceLeft(name, started.json.pid as number);
      expect((await cli(['status', '--name', name, '--json'])).json).toMatchObject({ state: 'stopped', pid: null });
    },
    BOOT_TIMEOUT,
  );

  it(
    'refuses a second start of a running instance, and a concurrent one',
    async () => {
      const name = 'e2e-lock';
      const config = await caseConfig(name);
      const first = startCli(['start', '--name', name, '--config', config, '--json']);
      const paths = instancePaths(E2E_HOME, name);
      await waitFor(() => existsSync(paths.pidFile), 60_000);
      const concurrent = await cli(['start', '--name', name, '--config', config, '--json']);
      expect(concurrent.exitCode).toBe(1);
      expect((concurrent.json.error as { code: string }).code).toBe('E_LOCKED');
      const firstResult = parse(await first);
      expect(firstResult.json.outcome, firstResult.stderr).toBe('healthy');
      // The refused start wrote no trace of its own (the lock comes first).
      await expectTraceMatches(name, 'first-start.json');
      const again = await cli(['start', '--name', name, '--config', config, '--json']);
      expect(again.exitCode).toBe(1);
      expect(again.json.error).toMatchObject({ code: 'E_ALREADY_RUNNING', hint: expect.stringContaining('warmvm stop') });
      // The refused starts touched nothing: the first instance is still healthy.
      expect((await cli(['status', '--name', name, '--json'])).json).toMatchObject({ state: 'running', pid: firstResult.json.pid });
      await stopAndCheckTrace(name);
      await expectNoInstanceLeft(name, firstResult.json.pid as number);
    },
    BOOT_TIMEOUT,
  );

  it(
    "Ctrl-C during an image's download exits as a start does (130), launches no QEMU, and keeps what arrived for the next start",
    async () => {
      const name = 'e2e-ctrlc-download';
      const dir = await mkdtemp(join(tmpdir(), 'wvm-dl-'));
      const image = join(dir, 'data.qcow2');
      await writeFile(join(dir, 'data.raw'), randomBytes(4 << 20));
      await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', join(dir, 'data.raw'), image]);
      const hex = createHash('sha256').update(readFileSync(image)).digest('hex');
      const server = await startFileServer(image);
      // The server sends half the file, then holds the rest back until the test lets it go.
      let release = () => {};
      server.behaviour.hold = new Promise<void>((resolve) => {
        release = resolve;
      });
      const partial = join(homePaths(E2E_HOME).images, `.download-url-sha256-${hex}.partial`);
      try {
        const config = await caseConfig(name, { image: { url: server.url('/data.qcow2'), digest: `sha256:${hex}`, kernel: demo.kernel, initrd: demo.initrd } });
        const run = startCli(['start', '--name', name, '--config', config, '--json']);
        await waitFor(() => existsSync(partial) && statSync(partial).size > 0, 60_000);
        run.kill('SIGINT');
        const result = parse(await run);
        expect(result.exitCode, result.stderr).toBe(130);
        expect(result.json).toMatchObject({ failedState: 'start.image', error: { code: 'E_INTERRUPTED' } });
        expect(statSync(partial).size).toBeGreaterThan(0);
        expect(existsSync(join(homePaths(E2E_HOME).images, `.lock-url-sha256-${hex}`))).toBe(false);
        expect(existsSync(join(homePaths(E2E_HOME).images, `url-sha256-${hex}`))).toBe(false);
        await expectNoInstanceLeft(name, undefined);
      } finally {
        release();
        await server.close();
        await rm(dir, { recursive: true, force: true });
        await rm(partial, { force: true });
        await rm(`${partial}.json`, { force: true });
      }
    },
    BOOT_TIMEOUT,
  );

  it(
    'Ctrl-C during the boot stops the QEMU it launched',
    async () => {
      const name = 'e2e-ctrlc';
      const paths = instancePaths(E2E_HOME, name);
      const run = startCli(['start', '--name', name, '--config', await caseConfig(name), '--json']);
      await waitFor(() => existsSync(paths.pidFile) && readFileSync(paths.pidFile, 'utf8').endsWith('\n'), 60_000);
      const pid = Number(readFileSync(paths.pidFile, 'utf8'));
      expect(pid).toBeGreaterThan(0);
      run.kill('SIGINT');
      const result = parse(await run);
      expect(result.exitCode).toBe(130);
      expect(result.json.error).toMatchObject({ code: 'E_INTERRUPTED' });
      await expectTraceMatches(name, 'interrupted-cold-boot.json');
      await expectNoInstanceLeft(name, pid);
    },
    BOOT_TIMEOUT,
  );

  it(
    'a guest that never turns healthy fails at the bound, with the last answer, and leaves no QEMU',
    async () => {
      const name = 'e2e-unhealthy';
      // Health and bounds are not in the config key: its own settings keep it from resuming another test's snapshot.
      const config = await caseConfig(name, { health: [{ port: 8080, path: '/no-such-page' }], bounds: { healthSeconds: 3 } });
      const paths = instancePaths(E2E_HOME, name);
      const run = startCli(['start', '--name', name, '--config', config, '--json']);
      await waitFor(() => existsSync(paths.pidFile) && readFileSync(paths.pidFile, 'utf8').endsWith('\n'), 60_000);
      const pid = Number(readFileSync(paths.pidFile, 'utf8'));
      const result = parse(await run);
      expect(result.exitCode).toBe(1);
      expect(result.json).toMatchObject({ failedState: 'coldBoot.probing' });
      // Whichever comes first, the probe's own bound or the state's: both name the last answer or the bound.
      expect((result.json.error as { message: string }).message).toMatch(/→ 404|did not happen within 3 s/);
      await expectTraceMatches(name, 'unhealthy.json');
      await expectNoInstanceLeft(name, pid);
    },
    BOOT_TIMEOUT,
  );

  it(
    'waits for the ready marker on the serial console; a marker that never comes fails booting at its bound, leaving no QEMU',
    async () => {
      const name = 'e2e-marker';
      const seen = await caseConfig(name, { readyMarker: 'warmvm: workload healthy' });
      const ready = await cli(['start', '--cold', '--no-capture', '--name', name, '--config', seen, '--json']);
      expect(ready.json.outcome, ready.stderr).toBe('healthy');
      expect(readFileSync(instancePaths(E2E_HOME, name).serialLog, 'utf8')).toContain('warmvm: workload healthy');
      await stopAndCheckTrace(name);

      const never = await caseVariantConfig(name, 'never', { readyMarker: 'warmvm: a line no guest prints', bounds: { bootSeconds: 15 } });
      const result = await cli(['start', '--cold', '--no-capture', '--name', name, '--config', never, '--json']);
      expect(result.exitCode).toBe(1);
      expect(result.json).toMatchObject({ failedState: 'coldBoot.booting' });
      expect((result.json.error as { message: string }).message).toMatch(/15 s/);
      await expectNoInstanceLeft(name, result.json.pid as number | undefined);
    },
    BOOT_TIMEOUT,
  );

  it(
    "a local image.disk (the user's own file, by path): a fresh overlay over it at the cold boot, the snapshot's frozen disk backs onto it, and a resume",
    async () => {
      const name = 'e2e-disk';
      // A fixed path: it is part of the config key, so each run finds its own snapshot again.
      const disk = join(E2E_HOME, 'case-disk', 'local.qcow2');
      if (!existsSync(disk)) {
        await mkdir(dirname(disk), { recursive: true });
        await execa('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
      }
      const config = await caseConfig(name, {
        // The demo guest's kernel and initramfs boot it; the disk rides along, as a cloud image's data disk would.
        image: { disk, format: 'qcow2', kernel: demo.kernel, initrd: demo.initrd, append: DEMO_APPEND },
        rotation: { command: DEMO_ROTATION.command, secrets: DEMO_ROTATION.names },
      });
      const first = await cli(['start', '--name', name, '--config', config, '--json']);
      expect(first.json, first.stderr).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', rotated: true });
      expect(await readBackingFile(join(snapshotOf(name).dir, 'disk.qcow2'))).toBe(disk);
      expect(await readBackingFile(instancePaths(E2E_HOME, name).overlay)).toBe(join(snapshotOf(name).dir, 'disk.qcow2'));
      expect((await cli(['stop', '--name', name, '--json'])).exitCode).toBe(0);
      const again = await cli(['start', '--name', name, '--config', config, '--json']);
      expect(again.json, again.stderr).toMatchObject({ outcome: 'healthy', path: 'resume' });
      expect((await cli(['stop', '--name', name, '--json'])).exitCode).toBe(0);
    },
    BOOT_TIMEOUT,
  );

  it('a host port already taken fails before launch, naming the port', async () => {
    const port = await findFreePort();
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      // Host ports are not in the config key: its own settings keep it apart from the other cases.
      const config = await caseConfig('e2e-port', { ports: [{ guest: 8080, host: port }] });
      const result = await cli(['start', '--name', 'e2e-port', '--config', config, '--json']);
      expect(result.exitCode).toBe(1);
      expect(result.json.error).toMatchObject({ code: 'E_PORT_TAKEN', message: expect.stringContaining(String(port)) });
      await expectNoInstanceLeft('e2e-port', undefined);
    } finally {
      server.close();
    }
  }, 60_000);
});

async function waitFor(check: () => boolean, boundMs: number): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
