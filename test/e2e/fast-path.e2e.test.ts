import { existsSync } from 'node:fs';
import { readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { QgaClient } from '../../adapters/qemu/protocol/qga-client.js';
import { fileChecksum } from '../../adapters/snapshot/checksum.js';
import { parseManifest } from '../../adapters/snapshot/manifest.js';
import { listCaptureDirs, SNAPSHOT_FILE_MODE } from '../../adapters/snapshot/store.js';
import { cli, E2E_HOME, parse, startCli, type CliResult } from '../helpers/cli.js';
import { secretFingerprint, sha256 } from '../helpers/fingerprint.js';
import { expectOnlyFinalQemuLeft } from '../helpers/instance-leftovers.js';
import { startKillingQemuAt } from '../helpers/qemu-kill.js';
import { slowQemuReplies } from '../helpers/slow-qemu.js';
import { caseConfig, corruptMemory, newestSetAside, removeSnapshotsCapturedBy, sealedChecksum, snapshotDigest, snapshotOf } from '../helpers/store-check.js';
import { expectedTracePath, expectTraceMatches, stopAndCheckTrace } from '../helpers/trace-expect.js';
import { waitForState } from '../helpers/trace-watch.js';

// The fast path on the real QEMU and demo guest: capture, resume with fresh secrets, and the
// cold fallback for each fault. Each test runs on its own instance with a config of its own
// (caseConfig), so that each has its own snapshot: a snapshot belongs to a config.
const TIMEOUT = 300_000;
const names = ['fp-main', 'fp-trunc', 'fp-corrupt', 'fp-mismatch', 'fp-rotate', 'fp-kill', 'fp-crash', 'fp-interrupt'];
const configs = new Map<string, string>();

const fingerprint = (result: CliResult): Promise<string> => secretFingerprint(result);

/** The case's own config, unless the arguments name another. */
function withConfig(name: string, args: string[]): string[] {
  return args.includes('--config') ? args : ['--config', configs.get(name) as string, ...args];
}

async function start(name: string, args: string[] = [], env: Record<string, string> = {}): Promise<CliResult> {
  const result = await cli(['start', '--name', name, '--json', ...withConfig(name, args)], env);
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
      configs.set(name, await caseConfig(name));
    }
    await removeSnapshotsCapturedBy(names);
    const built = await cli(['guest', 'build', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
  }, 900_000);

  afterAll(async () => {
    for (const name of names) await stop(name);
    await removeSnapshotsCapturedBy(names);
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
      // The capture published before reading the memory file back; its seal, a process of its own, recorded the checksum after.
      const paths = snapshotOf(name);
      expect(await sealedChecksum(paths)).toBe((await fileChecksum(paths.memory)).checksum);
      expect(await readFile(instancePaths(E2E_HOME, name).sealLog, 'utf8')).toContain("the memory file's checksum is recorded");
      const secretsFile = instancePaths(E2E_HOME, name).secretsFile;
      expect((await stat(secretsFile)).mode & 0o777).toBe(0o600);
      const firstPrint = await fingerprint(first);
      expect(firstPrint).toBe(sha256(await readFile(secretsFile)));
      expect(firstPrint).not.toBe(sha256('API_KEY=' + '0'.repeat(64) + '\n'));
      // The RAM stays in a sparse, read-only memory file; the migration stream holds only the devices.
      const memory = await stat(paths.memory);
      expect(memory.size).toBe(256 * 2 ** 20);
      expect(memory.blocks * 512).toBeLessThan(memory.size);
      expect(memory.mode & 0o777).toBe(SNAPSHOT_FILE_MODE);
      expect((await stat(paths.state)).size).toBeLessThan(4 * 2 ** 20);
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
    'a truncated, then a missing memory file: each falls back to a cold boot, which sets it aside and captures anew',
    async () => {
      const name = 'fp-trunc';
      await start(name);
      await expectTraceMatches(name, 'first-start.json');
      await stopAndCheckTrace(name);
      for (const damage of ['truncate', 'remove'] as const) {
        const paths = snapshotOf(name);
        if (damage === 'truncate') await truncate(paths.memory, 64 << 20);
        else await rm(paths.memory);
        const fallback = await start(name);
        const why =
          damage === 'truncate'
            ? /resume\.preparing: the snapshot's mem\.raw is 67108864 bytes, its manifest says 268435456/
            : /resume\.preparing: the snapshot's mem\.raw is missing/;
        expect(fallback.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringMatching(why) });
        await expectFallback(name, fallback, 'fallback-truncated-memory.json');
        // The damaged snapshot was set aside with its reason, and a whole one captured in its place.
        const aside = await newestSetAside(name);
        expect(aside).toBeDefined();
        expect(aside?.reason).toMatch(why.source.includes('missing') ? /missing/ : /bytes/);
        const manifest = parseManifest(await readFile(paths.manifest, 'utf8'));
        expect((await stat(paths.memory)).size).toBe(manifest.files.memory.bytes);
        await stopAndCheckTrace(name);
      }
    },
    TIMEOUT,
  );

  it(
    'a memory file overwritten in place (same size) is checksummed because its times changed, found damaged, and captured anew',
    async () => {
      const name = 'fp-corrupt';
      await start(name);
      await expectTraceMatches(name, 'first-start.json');
      await stopAndCheckTrace(name);
      // A file whose times changed but whose bytes did not is checksummed once and resumed.
      const paths = snapshotOf(name);
      await writeFile(paths.state, await readFile(paths.state));
      const touched = await start(name);
      expect(touched.json).toMatchObject({ path: 'resume' });
      await expectTraceMatches(name, 'resume.json');
      await stopAndCheckTrace(name);
      await corruptMemory(name);
      const result = await start(name);
      expect(result.json).toMatchObject({
        path: 'cold+capture+resume',
        fallbackReason: expect.stringMatching(/resume\.preparing: the snapshot's mem\.raw .* does not match its checksum/),
      });
      await expectFallback(name, result, 'fallback-corrupt-memory.json');
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
      expect((await newestSetAside(name))?.reason).toContain('QEMU version');
      // Set aside by choosing: no resume ran, so one QEMU for the cold boot and one for the resume of the new capture.
      await expectFallback(name, result, 'fallback-mismatch.json');
      await stopAndCheckTrace(name);
      // A changed config is another config: it captures a snapshot of its own and the first one stays.
      const kept = await snapshotDigest(name);
      const bigger = await caseConfig(`${name}-bigger`, { memoryMb: 320 });
      const resized = await start(name, ['--config', bigger]);
      expect(resized.json).toMatchObject({ path: 'cold+capture+resume' });
      expect(resized.json.fallbackReason).toBeUndefined();
      expect(snapshotOf(name).key).not.toBe(paths.key);
      await stopAndCheckTrace(name);
      expect(await snapshotDigest(name)).not.toBe(kept);
      const back = await start(name);
      expect(back.json).toMatchObject({ path: 'resume' });
      expect(await snapshotDigest(name)).toBe(kept);
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );

  it(
    'a guest whose rotate-secrets fails after resume falls back to a cold boot and the snapshot stays; the second time in a row it is set aside and captured anew',
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
      const captured = await cli(['capture', '--name', name, '--json', ...withConfig(name, [])]);
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
      const again = await start(name);
      expect(again.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringContaining('resume.rotating') });
      await expectFallback(name, again, 'fallback-rotate-failed-twice.json');
      expect((await newestSetAside(name))?.reason).toMatch(/rotat/);
      await stopAndCheckTrace(name);
      // The new capture's guest rotates: the next start resumes it.
      expect((await start(name)).json).toMatchObject({ path: 'resume' });
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
      // Kill -9 the resume's QEMU as soon as the trace says the incoming migration began. The load
      // takes tens of milliseconds (the RAM is mapped): on a busy machine the kill can come after it,
      // and such a try proves nothing about this case, so it is made again (each ends healthy).
      let incoming = await startKillingQemuAt(name, withConfig(name, []), 'resume.incoming');
      for (let tries = 1; incoming.landedIn !== 'resume.incoming' && tries < 4; tries += 1) {
        expect(incoming.result.json.outcome, incoming.result.stderr).toBe('healthy');
        console.warn(`fast-path: the kill landed in ${incoming.landedIn}, not resume.incoming: trying again`);
        await stopAndCheckTrace(name);
        // A kill after cont counted against the snapshot: a healthy resume clears that again.
        expect((await start(name)).json).toMatchObject({ path: 'resume' });
        await stopAndCheckTrace(name);
        incoming = await startKillingQemuAt(name, withConfig(name, []), 'resume.incoming');
      }
      expect(incoming.landedIn).toBe('resume.incoming');
      expect(incoming.result.json.outcome, incoming.result.stderr).toBe('healthy');
      expect(incoming.result.json).toMatchObject({ path: 'cold', fallbackReason: expect.stringContaining('QEMU exited') });
      await expectFallback(name, incoming.result, 'fallback-qemu-killed-incoming.json');
      expect(await snapshotDigest(name)).toBe(before);
      await stopAndCheckTrace(name);
      // As soon as rotating begins, while the resume still connects to the agent: that connect loop must
      // end with its QEMU, not take the fallback QEMU's agent socket (same path) and hang its boot.
      const rotating = await startKillingQemuAt(name, withConfig(name, []), 'resume.rotating');
      expect(rotating.result.json.outcome, JSON.stringify(rotating.result.json)).toBe('healthy');
      expect(rotating.result.json).toMatchObject({ path: 'cold', fallbackReason: expect.stringMatching(/^resume\.rotating: QEMU exited/) });
      await expectFallback(name, rotating.result, 'fallback-qemu-killed-rotating.json');
      expect(await snapshotDigest(name)).toBe(before);
      await stopAndCheckTrace(name);
    },
    TIMEOUT,
  );

  it(
    'a cold boot whose QEMU crashes by itself (SIGABRT) is booted once more: the first start ends healthy with a warning, one QEMU left',
    async () => {
      const name = 'fp-crash';
      const crashed = await startKillingQemuAt(name, withConfig(name, []), 'coldBoot.booting', 0, { signal: 'SIGABRT' });
      expect(crashed.landedIn).toBe('coldBoot.booting');
      expect(crashed.result.json.outcome, crashed.result.stderr).toBe('healthy');
      expect(crashed.result.json).toMatchObject({ path: 'cold+capture+resume' });
      expect(crashed.result.json.fallbackReason).toBeUndefined();
      expect(crashed.result.json.warnings).toEqual([
        expect.stringMatching(/^QEMU crashed in coldBoot\.booting \(QEMU crashed \(killed by SIGABRT\) while .*\), so the cold boot was tried once more$/),
      ]);
      await expectFallback(name, crashed.result, 'cold-crash-booted-again.json');
      await stopAndCheckTrace(name);
      // What the second boot captured is a snapshot like any other.
      expect((await start(name)).json).toMatchObject({ path: 'resume' });
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
      // A capture takes milliseconds: a QEMU slow to answer holds it in stopping, where the Ctrl-C lands.
      const qemuPid = Number((await readFile(instancePaths(E2E_HOME, name).pidFile, 'utf8')).trim());
      const slow = await slowQemuReplies(qemuPid, 1_000);
      const since = Date.now();
      let ended = false;
      const run = startCli(['capture', '--name', name, '--json', ...withConfig(name, [])]);
      void run.finally(() => (ended = true)).catch(() => undefined);
      try {
        expect(await waitForState(name, 'capture.stopping', since, () => ended), 'capture never reached stopping').toBeDefined();
        run.kill('SIGINT');
        await waitForState(name, 'capture.recovering', since, () => ended);
      } finally {
        await slow.stop();
      }
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
