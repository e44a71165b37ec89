import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/paths.js';
import { QgaClient } from '../../adapters/qga-client.js';
import { cli, E2E_HOME, type CliResult } from '../helpers/cli.js';
import { expectOnlyFinalQemuLeft } from '../helpers/instance-leftovers.js';
import { snapshotOf } from '../helpers/store-check.js';
import { expectTraceMatches, loadExpectedTraceScaled, stopAndCheckTrace } from '../helpers/trace-expect.js';

// The Debian profile end to end on the real QEMU: built with debootstrap and provisioned through
// cloud-init (cached in the e2e home across runs of the same inputs), its workload in a container,
// secrets rotated inside the container through the agent and `docker exec`.
const name = 'deb-main';
/** The demo guest's expected traces, bounds ×10: rotation is a `docker exec` (5–8 s under TCG), a cold boot about a minute. */
const expected = (file: string) => loadExpectedTraceScaled(file, 10);
let configDir: string;
let config: string;

async function fingerprint(result: CliResult): Promise<string> {
  const url = (result.json.health as { url: string }[])[0]?.url.replace('/health', '/secret-fingerprint') as string;
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return (await response.text()).trim();
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

async function start(): Promise<CliResult> {
  const result = await cli(['start', '--name', name, '--config', config, '--json']);
  expect(result.json.outcome, result.stderr + result.stdout).toBe('healthy');
  return result;
}

describe('the Debian profile on real QEMU', () => {
  beforeAll(async () => {
    configDir = await mkdtemp(join(tmpdir(), 'warmvm-debian-'));
    config = join(configDir, 'debian.json');
    await writeFile(config, JSON.stringify({ image: { profile: 'debian' }, settings: { GREETING: "hello, it's the host" } }));
    await cli(['stop', '--name', name]);
    await cli(['reset', '--name', name, '--snapshot']);
    const built = await cli(['guest', 'build', '--profile', 'debian', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
    expect(built.json).toMatchObject({ profile: 'debian', outcome: expect.stringMatching(/^(built|cached)$/) });
  }, 1_800_000);

  afterAll(async () => {
    await cli(['stop', '--name', name]);
    await rm(configDir, { recursive: true, force: true });
  });

  it('provisioned through cloud-init at build, it cold boots, captures, resumes with rotation inside the container; a second resume has other secrets', async () => {
    const first = await start();
    expect(first.json).toMatchObject({ path: 'cold+capture+resume', rotated: true });
    await expectTraceMatches(name, await expected('first-start.json'));
    const secretsFile = instancePaths(E2E_HOME, name).secretsFile;
    const firstPrint = await fingerprint(first);
    expect(firstPrint).toBe(sha256(await readFile(secretsFile)));
    expect(firstPrint).not.toBe(sha256(`API_KEY=${'0'.repeat(64)}\n`));
    // The guest read the runtime disk (warmvm's own ISO) when it booted; the container sees it too.
    const qga = await QgaClient.connect(instancePaths(E2E_HOME, name).qgaSocket, { timeoutMs: 10_000 });
    try {
      const expectedSettings = `GREETING='hello, it'\\''s the host'\nWARMVM_INSTANCE='${name}'\n`;
      const inGuest = await qga.exec('/bin/cat', ['/run/warmvm/settings.env']);
      expect(inGuest.stdout.toString(), inGuest.stderr.toString()).toBe(expectedSettings);
      const inContainer = await qga.exec('/usr/bin/docker', ['exec', 'warmvm-workload', 'cat', '/run/warmvm-host/settings.env'], { timeoutMs: 60_000 });
      expect(inContainer.stdout.toString(), inContainer.stderr.toString()).toBe(expectedSettings);
    } finally {
      await qga.close();
    }
    await stopAndCheckTrace(name);

    const second = await start();
    expect(second.json).toMatchObject({ path: 'resume', rotated: true });
    await expectTraceMatches(name, await expected('resume.json'));
    const secondPrint = await fingerprint(second);
    expect(secondPrint).toBe(sha256(await readFile(secretsFile)));
    expect(secondPrint).not.toBe(firstPrint);
    await stopAndCheckTrace(name);
  }, 1_800_000);

  it('falls back to a cold boot when the stored state is corrupt, and ends healthy', async () => {
    await cli(['stop', '--name', name]);
    const paths = snapshotOf(name);
    await truncate(paths.stateRaw, 0);
    const zst = await readFile(paths.stateZst);
    for (let offset = Math.floor(zst.length / 2); offset < Math.floor(zst.length / 2) + 64; offset += 1) zst[offset] = (zst[offset] ?? 0) ^ 0xff;
    await writeFile(paths.stateZst, zst);
    const result = await start();
    expect(result.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringMatching(/corrupt/i) });
    const entries = await expectTraceMatches(name, await expected('fallback-corrupt-zst.json'));
    await expectOnlyFinalQemuLeft(name, entries, result.json.pid as number);
    await stopAndCheckTrace(name);
  }, 1_800_000);
});
