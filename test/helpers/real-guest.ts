import { readFile } from 'node:fs/promises';
import { expect } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { QgaClient } from '../../adapters/qemu/protocol/qga-client.js';
import { cli, E2E_HOME, type CliResult } from './cli.js';
import { sha256 } from './fingerprint.js';
import { expectOnlyFinalQemuLeft } from './instance-leftovers.js';
import { corruptMemory } from './store-check.js';
import { expectTraceMatches, loadExpectedTraceScaled, stopAndCheckTrace } from './trace-expect.js';

// Checks shared by the e2e tests of real guests (the Debian profile, a user's image): they do more
// than the demo guest in the same states, so its expected traces apply with every bound ×10.
const TRACE_SCALE = 10;

/** An expected trace of the demo guest with every bound ×10. */
export const expectedScaled = (file: string) => loadExpectedTraceScaled(file, TRACE_SCALE);

/** `warmvm start --json`; it must end healthy. */
export async function startHealthy(name: string, config: string): Promise<CliResult> {
  const result = await cli(['start', '--name', name, '--config', config, '--json']);
  expect(result.json.outcome, result.stderr + result.stdout).toBe('healthy');
  return result;
}

/**
 * A first start: cold + capture + resume, rotated, the first-start trace, and the guest's
 * fingerprint (read by `fingerprintOf`) is the host's secrets file. Returns the start, the
 * file's text and the fingerprint.
 */
export async function expectFirstStart(
  name: string,
  config: string,
  fingerprintOf: (result: CliResult) => Promise<string>,
): Promise<{ result: CliResult; secrets: string; print: string }> {
  const result = await startHealthy(name, config);
  expect(result.json).toMatchObject({ path: 'cold+capture+resume', rotated: true });
  await expectTraceMatches(name, await expectedScaled('first-start.json'));
  const secrets = await readFile(instancePaths(E2E_HOME, name).secretsFile);
  const print = await fingerprintOf(result);
  expect(print).toBe(sha256(secrets));
  return { result, secrets: secrets.toString('utf8'), print };
}

/** Runs `check` with the guest agent of the running instance, and closes the connection whatever happens. */
export async function withGuestAgent<T>(name: string, check: (qga: QgaClient) => Promise<T>): Promise<T> {
  const qga = await QgaClient.connect(instancePaths(E2E_HOME, name).qgaSocket, { timeoutMs: 10_000 });
  try {
    return await check(qga);
  } finally {
    await qga.close();
  }
}

/**
 * A resume after a stopped one: rotated, the resume trace, and the guest's fingerprint (read by
 * `fingerprintOf`) is the host's new secrets file and not `previous`.
 */
export async function expectResumeWithNewSecrets(name: string, config: string, fingerprintOf: (result: CliResult) => Promise<string>, previous: string): Promise<void> {
  const result = await startHealthy(name, config);
  expect(result.json).toMatchObject({ path: 'resume', rotated: true });
  await expectTraceMatches(name, await expectedScaled('resume.json'));
  const print = await fingerprintOf(result);
  expect(print).toBe(sha256(await readFile(instancePaths(E2E_HOME, name).secretsFile)));
  expect(print).not.toBe(previous);
  await stopAndCheckTrace(name);
}

/** A corrupt stored state: the start falls back to a cold boot, ends healthy, and leaves only its final QEMU. */
export async function expectCorruptStateFallsBack(name: string, config: string): Promise<void> {
  await cli(['stop', '--name', name]);
  await corruptMemory(name);
  const result = await startHealthy(name, config);
  expect(result.json).toMatchObject({ path: 'cold+capture+resume', fallbackReason: expect.stringMatching(/corrupt|checksum/i) });
  const entries = await expectTraceMatches(name, await expectedScaled('fallback-corrupt-memory.json'));
  await expectOnlyFinalQemuLeft(name, entries, result.json.pid as number);
  await stopAndCheckTrace(name);
}
