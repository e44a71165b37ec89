import { existsSync } from 'node:fs';
import { readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { QgaClient } from '../../adapters/qemu/protocol/qga-client.js';
import { parseManifest } from '../../adapters/snapshot/manifest.js';
import { listCaptureDirs } from '../../adapters/snapshot/store.js';
import { cli, E2E_HOME, parse, startCli, type CliResult } from '../helpers/cli.js';
import { secretFingerprint, sha256 } from '../helpers/fingerprint.js';
import { expectOnlyFinalQemuLeft } from '../helpers/instance-leftovers.js';
import { startKillingQemuAt } from '../helpers/qemu-kill.js';
import { corruptStoredState, snapshotDigest, snapshotOf } from '../helpers/store-check.js';
import { expectedTracePath, expectTraceMatches, stopAndCheckTrace } from '../helpers/trace-expect.js';
import { waitForState } from '../helpers/trace-watch.js';

// The fast path on the real QEMU and demo guest: capture, resume with fresh secrets, and the
// cold fallback for each fault. Each test runs on its own instance so that each has its own snapshot.
const TIMEOUT = 300_000;
const names = ['fp-main', 'fp-trunc', 'fp-corrupt', 'fp-mismatch', 'fp-rotate', 'fp-kill', 'fp-interrupt'];

const fingerprint = (result: CliResult): Promise<string> => secretFingerprint(result);

async function start(name: string, args: string[] = [], env: Record<string, string> = {}): Promise<CliResult> {
  const result = await cli(['start', '--name', name, '--json', ...args], env);
  expect(result.json.outcome, result.stderr + result.stdout).toBe('healthy');
  return result;
}

/** For clean-up: whatever state the instance is in. */
async function stop(name: string): Promise<void> {
  await cli(['stop', '--name', name]);
}

/** The start fell back: its trace matches `expected`, and of the QEMUs it launched only the last runs. */
async function expectFallback(name: string, result: CliResult, expected: string): Promise<void> {
  const entries = await expectTraceMatches(name, expected);
  const pids = await expectOnlyFinalQemuLeft(name, entries, result.json.pid as number);
  expect(pids.length).toBeGreaterThan(1);
}

describe('fast path on real QEMU', () => {
  beforeAll(async () => {
    for (const name of names) {
      await stop(name);
      await cli(['reset', '--name', name, '--snapshot']);
    }
    const built = await cli(['guest', 'build', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
  }, 900_000);

  afterAll(async () => {
    for (const name of names) await stop(name);
  });

  it(
    'first start: cold → capture → resume; second start resumes with different secrets',
    async () => {
      const name = 'fp-main';
      const first = await start(name);
      await expectTraceMatches(name, 'first-start.json');
      expect(first.json).toMatchObject({ path: 'cold+capture+resume', rotated: true, secretsFile: instancePaths(E2E_HOME, name).secretsFile });
      expect(first.json.fallbackReason).toBeUndefined();
      const seconds = first.json.seconds as Record<string, number>;
      for (const phase of ['coldBoot.booting', 'capture.migrating', 'capture.storing', 'resume.incoming', 'resume.cont', 'resume.rotating', 'resume.probing'])
        expect(seconds[phase], phase).toBeTypeOf('number');
      const secretsFile = instancePaths(E2E_HOME, name).secretsFile;
      expect((await stat(secretsFile)).mode & 0o777).toBe(0o600);
      const firstPrint = await fingerprint(first);
      expect(firstPrint).toBe(sha256(await readFile(secretsFile)));
      expect(firstPrint).not.toBe(sha256('API_KEY=' + '0'.repeat(64) + '\n'));
      // The snapshot holds its state compressed and as a sparse raw copy.
      const paths = snapshotOf(name);
      const raw = await stat(paths.stateRaw);
      expect(raw.blocks * 512).toBeLessThan(raw.size);
      await stopAndCheckTrace(name);

      const second = await start(name);
      await expectTraceMatches(name, 'resume.json');
      // The same check as a CI step: the CLI, a real process, on the real run's trace.
      const check = await cli(['trace', 'check', expectedTracePath('resume.json'), '--name', name]);
      expect(check.exitCode, check.stdout + check.stderr).toBe(0);
      expect(check.stdout).toContain('trace check OK');
      expect(second.json).toMatchObject({ path: 'resume', rotated: true });
      const secondPrint = await fingerprint(second);
      expect(secondPrint).not.toBe(firstPrint);
      expect(secondPrint).toBe(sha256(await readFile(secretsFile)));
      await stopAndCheckTrace(name);

      // --no-rotation: the snapshot's placeholders stay, loudly (a warned state in the trace).
      const unrotated = await start(name, ['--no-rotation']);
      expect(unrotated.json).toMatchObject({ path: 'resume', rotated: false, secretsFile: null, warnings: [expect.stringContaining('--no-rotation')] });
      const entries = await expectTraceMatches(name, 'no-rotation.json');
      expect(entries.find((entry) => entry.state === 'resume.unrotated')?.warning).toMatch(/placeholder secrets/);
      expect(await fingerprint(unrotated)).not.toBe(secondPrint);
      // The previous run's secrets are gone: nothing on disk claims to be this guest's.
      expect(existsSync(instancePaths(E2E_HOME, name).secretsFile)).toBe(false);
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );

  it(
    'a truncated state: the raw cache is rebuilt from the .zst; with the .zst truncated too, the cold fallback captures anew',
    async () => {
      const name = 'fp-trunc';
      await start(name);
      await expectTraceMatches(name, 'first-start.json');
      await stopAndCheckTrace(name);
      const paths = snapshotOf(name);
      const size = (await stat(paths.stateRaw)).size;
      await truncate(paths.stateRaw, Math.floor(size / 2));
      const healed = await start(name);
      await expectTraceMatches(name, 'resume.json');
      expect(healed.json).toMatchObject({ path: 'resume' });
      expect((await stat(paths.stateRaw)).size).toBe(size);
      await stopAndCheckTrace(name);

      await truncate(paths.stateRaw, 4096);
      await truncate(paths.stateZst, Math.floor((await stat(paths.stateZst)).size / 2));
      const fallback = await start(name);
      expect(fallback.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringMatching(/resume\.preparing: .*(truncated|corrupt)/i) });
      await expectFallback(name, fallback, 'fallback-truncated-zst.json');
      // The damaged snapshot was set aside with its reason, and a whole one captured in its place.
      const asides = (await readdir(paths.root)).filter((entry) => entry.startsWith(`${name}.set-aside-`));
      expect(asides.length).toBeGreaterThan(0);
      expect(await readFile(join(paths.root, asides[0] as string, 'reason.txt'), 'utf8')).toMatch(/truncated|corrupt/i);
      // A new capture's state need not be the old one's size; it must be whole by its own manifest.
      const manifest = parseManifest(await readFile(paths.manifest, 'utf8'));
      expect((await stat(paths.stateRaw)).size).toBe(manifest.files.state.apparentBytes);
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );

  it(
    'a corrupt .zst falls back to a cold boot, with the reason in --json',
    async () => {
      const name = 'fp-corrupt';
      await start(name);
      await expectTraceMatches(name, 'first-start.json');
      await stopAndCheckTrace(name);
      await corruptStoredState(name);
      const result = await start(name);
      expect(result.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringMatching(/corrupt/i) });
      await expectFallback(name, result, 'fallback-corrupt-zst.json');
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );

  it(
    'a manifest that does not match this host is set aside with its reason; the cold boot captures anew',
    async () => {
      const name = 'fp-mismatch';
      await start(name);
      await expectTraceMatches(name, 'first-start.json');
      await stopAndCheckTrace(name);
      const paths = snapshotOf(name);
      const manifest = JSON.parse(await readFile(paths.manifest, 'utf8')) as { qemuVersion: string };
      manifest.qemuVersion = '9.2.0';
      await writeFile(paths.manifest, JSON.stringify(manifest));
      const result = await start(name);
      expect(result.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringContaining('9.2.0') });
      const asides = (await readdir(paths.root)).filter((entry) => entry.startsWith(`${name}.set-aside-`));
      expect(await readFile(join(paths.root, asides.at(-1) as string, 'reason.txt'), 'utf8')).toContain('QEMU version');
      // Set aside by choosing: no resume ran, so one QEMU for the cold boot and one for the resume of the new capture.
      await expectFallback(name, result, 'fallback-mismatch.json');
      await stopAndCheckTrace(name);
      // A config changed since that capture: the reason names the part and both values.
      const bigger = join(E2E_HOME, `${name}-bigger.json`);
      await writeFile(bigger, JSON.stringify({ memoryMb: 320 }));
      const resized = await start(name, ['--config', bigger]);
      expect(resized.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: 'the config changed since the capture: memoryMb 256 → 320' });
      await expectFallback(name, resized, 'fallback-mismatch.json');
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );

  it(
    'a guest whose rotate-secrets fails after resume falls back to a cold boot; the good snapshot stays',
    async () => {
      const name = 'fp-rotate';
      // A VM whose rotate command is broken, captured so: every resume of it fails to rotate.
      const cold = await start(name, ['--no-capture']);
      expect(cold.json).toMatchObject({ path: 'cold' });
      await expectTraceMatches(name, 'cold.json');
      const qga = await QgaClient.connect(instancePaths(E2E_HOME, name).qgaSocket, { timeoutMs: 10_000 });
      try {
        const broke = await qga.exec('/bin/sh', ['-c', 'mount --bind /bin/false /usr/local/bin/rotate-secrets']);
        expect(broke.exitCode, broke.stderr.toString()).toBe(0);
      } finally {
        await qga.close();
      }
      const captured = await cli(['capture', '--name', name, '--json']);
      expect(captured.json, captured.stderr).toMatchObject({ outcome: 'captured' });
      await expectTraceMatches(name, 'capture.json');
      const before = await snapshotDigest(name);
      const result = await start(name);
      expect(result.json).toMatchObject({ path: 'cold', fallbackReason: expect.stringContaining('resume.rotating') });
      // /bin/false bound over the script runs busybox as "rotate-secrets": "applet not found", 127.
      expect(String(result.json.fallbackReason)).toMatch(/exited [1-9]\d*/);
      await expectFallback(name, result, 'fallback-rotate-failed.json');
      expect(await snapshotDigest(name)).toBe(before);
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );

  it(
    'QEMU killed while the resume loads its state, or waits for the guest agent: cold fallback, no QEMU left, snapshot intact',
    async () => {
      const name = 'fp-kill';
      await start(name);
      await expectTraceMatches(name, 'first-start.json');
      await stopAndCheckTrace(name);
      const before = await snapshotDigest(name);
      // Kill -9 the resume's QEMU as soon as the trace says the incoming migration began.
      const incoming = await startKillingQemuAt(name, [], 'resume.incoming');
      expect(incoming.result.json.outcome, incoming.result.stderr).toBe('healthy');
      expect(incoming.result.json).toMatchObject({ path: 'cold', fallbackReason: expect.stringContaining('QEMU exited') });
      await expectFallback(name, incoming.result, 'fallback-qemu-killed-incoming.json');
      expect(await snapshotDigest(name)).toBe(before);
      await stopAndCheckTrace(name);
      // As soon as rotating begins, while the resume still connects to the agent: that connect loop must
      // end with its QEMU, not take the fallback QEMU's agent socket (same path) and hang its boot.
      const rotating = await startKillingQemuAt(name, [], 'resume.rotating');
      expect(rotating.result.json.outcome, JSON.stringify(rotating.result.json)).toBe('healthy');
      expect(rotating.result.json).toMatchObject({ path: 'cold', fallbackReason: expect.stringMatching(/^resume\.rotating: QEMU exited/) });
      await expectFallback(name, rotating.result, 'fallback-qemu-killed-rotating.json');
      expect(await snapshotDigest(name)).toBe(before);
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );

  it(
    'an interrupted capture leaves the store as it was and the VM running',
    async () => {
      const name = 'fp-interrupt';
      await start(name);
      await expectTraceMatches(name, 'first-start.json');
      await stopAndCheckTrace(name);
      const before = await snapshotDigest(name);
      await start(name, ['--cold']);
      await expectTraceMatches(name, 'cold.json');
      const since = Date.now();
      let ended = false;
      const run = startCli(['capture', '--name', name, '--json']);
      void run.finally(() => (ended = true)).catch(() => undefined);
      expect(await waitForState(name, 'capture.migrating', since, () => ended), 'capture never reached migrating').toBeDefined();
      run.kill('SIGINT');
      const result = parse(await run);
      expect(result.exitCode).toBe(130);
      await expectTraceMatches(name, 'capture-interrupted.json');
      expect(await snapshotDigest(name)).toBe(before);
      expect(await listCaptureDirs(snapshotOf(name).root)).toEqual([]);
      const status = await cli(['status', '--name', name, '--json']);
      expect(status.json).toMatchObject({ state: 'running' });
      expect((status.json.health as { status: number }[])[0]?.status).toBe(200);
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );
});
