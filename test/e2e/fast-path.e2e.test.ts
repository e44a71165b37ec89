import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths, instancePaths } from '../../adapters/paths.js';
import { isProcessAlive } from '../../adapters/process-alive.js';
import { QgaClient } from '../../adapters/qga-client.js';
import { parseManifest } from '../../adapters/snapshot-manifest.js';
import { listCaptureDirs, snapshotPaths } from '../../adapters/snapshot-store.js';
import { cli, E2E_HOME, parse, startCli, type CliResult } from '../helpers/cli.js';

// The fast path on the real QEMU and demo guest: capture, resume with fresh secrets, and the
// cold fallback for each fault. Each test runs on its own instance so that each has its own snapshot.
const TIMEOUT = 300_000;
const names = ['fp-main', 'fp-trunc', 'fp-corrupt', 'fp-mismatch', 'fp-rotate', 'fp-kill', 'fp-interrupt'];

function snapshotOf(name: string) {
  return snapshotPaths(homePaths(E2E_HOME).snapshots, name);
}

async function fingerprint(result: CliResult): Promise<string> {
  const url = (result.json.health as { url: string }[])[0]?.url.replace('/health', '/secret-fingerprint') as string;
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return (await response.text()).trim();
}

function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

async function start(name: string, args: string[] = [], env: Record<string, string> = {}): Promise<CliResult> {
  const result = await cli(['start', '--name', name, '--json', ...args], env);
  expect(result.json.outcome, result.stderr + result.stdout).toBe('healthy');
  return result;
}

async function stop(name: string): Promise<void> {
  await cli(['stop', '--name', name]);
}

/** The snapshot's files as they are: to prove a failed attempt left a good snapshot untouched. */
async function snapshotFingerprint(name: string): Promise<string> {
  const paths = snapshotOf(name);
  const parts: string[] = [];
  for (const file of [paths.manifest, paths.stateZst]) {
    const info = await stat(file);
    parts.push(`${file}:${info.size}:${info.mtimeMs}`);
  }
  return parts.join('|');
}

/** Every QEMU the start launched is gone, but the one it ended with: one QEMU per instance. */
async function onlyFinalQemuLeft(name: string, result: CliResult): Promise<void> {
  const pids = launchedPids(name);
  expect(pids.length).toBeGreaterThan(1);
  expect(pids.at(-1)).toBe(result.json.pid);
  for (const pid of pids.slice(0, -1)) expect(await isProcessAlive(pid), `QEMU pid ${pid} of the failed attempt`).toBe(false);
}

/** Pids of the QEMUs this start launched, in order, from the launch events of its trace. */
function launchedPids(name: string): number[] {
  const trace = readFileSync(instancePaths(E2E_HOME, name).traceFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { state: string; event: { output?: { pid?: number } } });
  // A launch's pid is the output of the event that leaves `launching`.
  const launched = trace.filter((entry) => entry.state === 'coldBoot.booting' || entry.state === 'resume.incoming');
  return launched.flatMap((entry) => (typeof entry.event.output?.pid === 'number' ? [entry.event.output.pid] : []));
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

  it('first start: cold → capture → resume; second start resumes with different secrets', async () => {
    const name = 'fp-main';
    const first = await start(name);
    expect(first.json).toMatchObject({ path: 'cold+capture+resume', rotated: true, secretsFile: instancePaths(E2E_HOME, name).secretsFile });
    expect(first.json.fallbackReason).toBeUndefined();
    const seconds = first.json.seconds as Record<string, number>;
    for (const phase of ['coldBoot.booting', 'capture.migrating', 'capture.storing', 'resume.incoming', 'resume.cont', 'resume.rotating', 'resume.probing']) expect(seconds[phase], phase).toBeTypeOf('number');
    const secretsFile = instancePaths(E2E_HOME, name).secretsFile;
    expect((await stat(secretsFile)).mode & 0o777).toBe(0o600);
    const firstPrint = await fingerprint(first);
    expect(firstPrint).toBe(sha256(await readFile(secretsFile)));
    expect(firstPrint).not.toBe(sha256('API_KEY=' + '0'.repeat(64) + '\n'));
    // The snapshot holds its state compressed and as a sparse raw copy.
    const paths = snapshotOf(name);
    const raw = await stat(paths.stateRaw);
    expect(raw.blocks * 512).toBeLessThan(raw.size);
    await stop(name);

    const second = await start(name);
    expect(second.json).toMatchObject({ path: 'resume', rotated: true });
    const secondPrint = await fingerprint(second);
    expect(secondPrint).not.toBe(firstPrint);
    expect(secondPrint).toBe(sha256(await readFile(secretsFile)));
    await stop(name);
  }, TIMEOUT);

  it('a truncated state: the raw cache is rebuilt from the .zst; with the .zst truncated too, the cold fallback captures anew', async () => {
    const name = 'fp-trunc';
    await start(name);
    await stop(name);
    const paths = snapshotOf(name);
    const size = (await stat(paths.stateRaw)).size;
    await truncate(paths.stateRaw, Math.floor(size / 2));
    const healed = await start(name);
    expect(healed.json).toMatchObject({ path: 'resume' });
    expect((await stat(paths.stateRaw)).size).toBe(size);
    await stop(name);

    await truncate(paths.stateRaw, 4096);
    await truncate(paths.stateZst, Math.floor((await stat(paths.stateZst)).size / 2));
    const fallback = await start(name);
    expect(fallback.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringMatching(/resume\.preparing: .*(truncated|corrupt)/i) });
    await onlyFinalQemuLeft(name, fallback);
    // The damaged snapshot was set aside with its reason, and a whole one captured in its place.
    const asides = (await readdir(paths.root)).filter((entry) => entry.startsWith(`${name}.set-aside-`));
    expect(asides.length).toBeGreaterThan(0);
    expect(await readFile(join(paths.root, asides[0] as string, 'reason.txt'), 'utf8')).toMatch(/truncated|corrupt/i);
    // A new capture's state need not be the old one's size; it must be whole by its own manifest.
    const manifest = parseManifest(await readFile(paths.manifest, 'utf8'));
    expect((await stat(paths.stateRaw)).size).toBe(manifest.files.state.apparentBytes);
    await stop(name);
  }, TIMEOUT);

  it('a corrupt .zst falls back to a cold boot, with the reason in --json', async () => {
    const name = 'fp-corrupt';
    await start(name);
    await stop(name);
    const paths = snapshotOf(name);
    await truncate(paths.stateRaw, 0);
    const zst = await readFile(paths.stateZst);
    for (let offset = Math.floor(zst.length / 2); offset < Math.floor(zst.length / 2) + 64; offset += 1) zst[offset] = (zst[offset] ?? 0) ^ 0xff;
    await writeFile(paths.stateZst, zst);
    const result = await start(name);
    expect(result.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringMatching(/corrupt/i) });
    await stop(name);
  }, TIMEOUT);

  it('a manifest that does not match this host is set aside with its reason; the cold boot captures anew', async () => {
    const name = 'fp-mismatch';
    await start(name);
    await stop(name);
    const paths = snapshotOf(name);
    const manifest = JSON.parse(await readFile(paths.manifest, 'utf8')) as { qemuVersion: string };
    manifest.qemuVersion = '9.2.0';
    await writeFile(paths.manifest, JSON.stringify(manifest));
    const result = await start(name);
    expect(result.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringContaining('9.2.0') });
    const asides = (await readdir(paths.root)).filter((entry) => entry.startsWith(`${name}.set-aside-`));
    expect(await readFile(join(paths.root, asides.at(-1) as string, 'reason.txt'), 'utf8')).toContain('QEMU version');
    await stop(name);
  }, TIMEOUT);

  it("a guest whose rotate-secrets fails after resume falls back to a cold boot; the good snapshot stays", async () => {
    const name = 'fp-rotate';
    // A VM whose rotate command is broken, captured so: every resume of it fails to rotate.
    const cold = await start(name, ['--no-capture']);
    expect(cold.json).toMatchObject({ path: 'cold' });
    const qga = await QgaClient.connect(instancePaths(E2E_HOME, name).qgaSocket, { timeoutMs: 10_000 });
    try {
      const broke = await qga.exec('/bin/sh', ['-c', 'mount --bind /bin/false /usr/local/bin/rotate-secrets']);
      expect(broke.exitCode, broke.stderr.toString()).toBe(0);
    } finally {
      await qga.close();
    }
    const captured = await cli(['capture', '--name', name, '--json']);
    expect(captured.json, captured.stderr).toMatchObject({ outcome: 'captured' });
    const before = await snapshotFingerprint(name);
    const result = await start(name);
    expect(result.json).toMatchObject({ path: 'cold', fallbackReason: expect.stringContaining('resume.rotating') });
    expect(String(result.json.fallbackReason)).toContain('exited 1');
    await onlyFinalQemuLeft(name, result);
    expect(await snapshotFingerprint(name)).toBe(before);
    await stop(name);
  }, TIMEOUT);

  it('QEMU killed while the resume loads its state: cold fallback, no QEMU left, snapshot intact', async () => {
    const name = 'fp-kill';
    await start(name);
    await stop(name);
    const before = await snapshotFingerprint(name);
    const paths = instancePaths(E2E_HOME, name);
    await rm(paths.traceFile, { force: true }); // the last run's trace must not be read for this one's
    const run = startCli(['start', '--name', name, '--json']);
    // Kill -9 the resume's QEMU as soon as the trace says the incoming migration began.
    let killed: number | undefined;
    const deadline = Date.now() + 60_000;
    while (killed === undefined && Date.now() < deadline) {
      const trace = existsSync(paths.traceFile) ? readFileSync(paths.traceFile, 'utf8') : '';
      const incoming = trace.split('\n').find((line) => line.includes('"state":"resume.incoming"'));
      if (incoming) {
        killed = (JSON.parse(incoming) as { event: { output: { pid: number } } }).event.output.pid;
        process.kill(killed, 'SIGKILL');
      } else await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const result = parse(await run);
    expect(result.json.outcome, result.stderr).toBe('healthy');
    expect(result.json).toMatchObject({ path: 'cold', fallbackReason: expect.stringContaining('QEMU exited') });
    expect(killed).toBeGreaterThan(0);
    await onlyFinalQemuLeft(name, result);
    expect(await snapshotFingerprint(name)).toBe(before);
    await stop(name);
  }, TIMEOUT);

  it('an interrupted capture leaves the store as it was and the VM running', async () => {
    const name = 'fp-interrupt';
    await start(name);
    await stop(name);
    const before = await snapshotFingerprint(name);
    await start(name, ['--cold']);
    const paths = instancePaths(E2E_HOME, name);
    await rm(paths.traceFile, { force: true });
    const run = startCli(['capture', '--name', name, '--json']);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const trace = existsSync(paths.traceFile) ? readFileSync(paths.traceFile, 'utf8') : '';
      if (trace.includes('"state":"capture.migrating"')) break;
      if (Date.now() > deadline) throw new Error('capture never reached migrating');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    run.kill('SIGINT');
    const result = parse(await run);
    expect(result.exitCode).toBe(130);
    expect(await snapshotFingerprint(name)).toBe(before);
    expect(await listCaptureDirs(snapshotOf(name).root)).toEqual([]);
    const status = await cli(['status', '--name', name, '--json']);
    expect(status.json).toMatchObject({ state: 'running' });
    expect((status.json.health as { status: number }[])[0]?.status).toBe(200);
    await stop(name);
  }, TIMEOUT);
});

