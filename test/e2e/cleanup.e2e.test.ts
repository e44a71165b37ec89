import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { isProcessAlive } from '../../adapters/support/process-alive.js';
import { QgaClient } from '../../adapters/qemu/protocol/qga-client.js';
import { validateExpectedTrace } from '../../adapters/trace/check/expected.js';
import { readTraceFile } from '../../adapters/trace/file.js';
import {
  adaptStep,
  describeModel,
  describeStep,
  expectStep,
  freezesFirst,
  NO_SNAPSHOT,
  planSequence,
  type Expectation,
  type SnapshotModel,
  type Step,
} from '../helpers/cleanup-plan.js';
import { cli, E2E_HOME, type CliResult } from '../helpers/cli.js';
import { expectColdMemory, expectNoRuntimeFiles, expectOnlyFinalQemuLeft, liveInstanceQemus, watchInstanceQemus } from '../helpers/instance-leftovers.js';
import {
  captureLocks,
  caseConfig,
  caseVariantConfig,
  damageSnapshotFile,
  leftoversUnder,
  newestSetAside,
  removeSnapshotOf,
  resumeFailuresOf,
  snapshotDigest,
  snapshotProblem,
  storeLeftovers,
} from '../helpers/store-check.js';
import { startKillingQemuAt } from '../helpers/qemu-kill.js';
import { expectTraceMatches, stopAndCheckTrace } from '../helpers/trace-expect.js';

// Randomised fault sequences on the real QEMU and demo guest; after every step: no QEMU of a
// failed attempt lives, the store holds no temp file, no capture lock is held, the instance lock
// is free, a good snapshot is untouched, and its failed-resume counter is what the model says.
// WARMVM_CLEANUP_RUNS=N runs N sequences; WARMVM_CLEANUP_SEED=S replays the one of seed S.
const DEFAULT_RUNS = 7;
// Stops qemu-ga from inside: its restart loop first, then (once guest-exec has answered) the agent.
const STOP_AGENT = [
  'ga=$(pidof qemu-ga) || exit 3',
  'loop=$(cut -d " " -f 4 /proc/$ga/stat)',
  'kill -9 "$loop" || exit 4',
  '( sleep 1; kill -9 "$ga" ) </dev/null >/dev/null 2>&1 &',
].join('\n');

/**
 * One sequence's configs: its own settings, so its own config key and snapshot; SHORT and
 * UNHEALTHY differ from BASE only in bounds and health, so all three share that snapshot.
 */
interface Configs {
  base: string;
  /** A resume of an agentless snapshot must give up rotating soon. */
  short: string;
  unhealthy: string;
}

async function configsFor(name: string): Promise<Configs> {
  return {
    base: await caseConfig(name),
    short: await caseVariantConfig(name, 'short', { bounds: { rotateSeconds: 3 } }),
    unhealthy: await caseVariantConfig(name, 'unhealthy', { health: [{ port: 8080, path: '/no-such-page' }], bounds: { healthSeconds: 3, rotateSeconds: 3 } }),
  };
}

function seeds(): number[] {
  const fixed = process.env.WARMVM_CLEANUP_SEED;
  const runs = Number(process.env.WARMVM_CLEANUP_RUNS ?? (fixed === undefined ? DEFAULT_RUNS : 1));
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`WARMVM_CLEANUP_RUNS must be a positive integer, got ${process.env.WARMVM_CLEANUP_RUNS}`);
  if (fixed !== undefined && !/^\d+$/.test(fixed)) throw new Error(`WARMVM_CLEANUP_SEED must be a seed printed by this test, got ${fixed}`);
  const base = fixed === undefined ? randomInt(2 ** 31) : Number(fixed);
  return Array.from({ length: runs }, (_, index) => base + index);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('cleanup after randomised faults on real QEMU', () => {
  const started: string[] = [];

  beforeAll(async () => {
    const built = await cli(['guest', 'build', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
    // Instances an earlier run left (a failed sequence keeps its files to be looked at).
    for (const entry of await readdir(join(E2E_HOME, 'instances')).catch(() => [] as string[])) {
      if (entry.startsWith('cleanup-')) await forget(entry);
    }
  }, 900_000);

  afterAll(async () => {
    for (const name of started) await cli(['stop', '--name', name]);
  });

  for (const seed of seeds()) {
    const plan = planSequence(seed);
    it(
      `seed ${seed}: ${plan.map(describeStep).join(' → ')}`,
      async () => {
        const name = `cleanup-${seed}`;
        started.push(name);
        await forget(name);
        const configs = await configsFor(name);
        let model: SnapshotModel = NO_SNAPSHOT;
        for (const [index, planned] of plan.entries()) {
          const step = adaptStep(planned, model);
          const adapted = step === planned ? '' : ` (planned: ${describeStep(planned)})`;
          const context = `[WARMVM_CLEANUP_SEED=${seed}, step ${index + 1}/${plan.length} ${describeStep(step)}${adapted}, snapshot ${describeModel(model)}] `;
          console.log(`cleanup: ${context}`);
          model = await runStep(name, configs, step, model, context);
        }
        await forget(name);
      },
      plan.length * 150_000,
    );
  }
});

/** Stops the instance, removes its config's snapshot (by the key its folder records), then the instance. */
async function forget(name: string): Promise<void> {
  await cli(['stop', '--name', name]);
  await removeSnapshotOf(name);
  await cli(['reset', '--name', name, '--snapshot']);
}

/** Runs one step and checks what it left; returns the snapshot model after it. */
async function runStep(name: string, configs: Configs, step: Step, model: SnapshotModel, context: string): Promise<SnapshotModel> {
  const storeBefore = await storeLeftovers();
  // Damage is made to the good snapshot: the start must replace it, so compare with it as it was.
  const damaged = step.kind === 'damage' ? await snapshotDigest(name) : undefined;
  const args = await injectFault(name, configs, step, model, context);
  const expected = expectStep(step, model);
  const { expectation } = expected;
  // agentStopped's own capture made the snapshot its last start must leave as it is.
  const before = step.kind === 'damage' ? damaged : await snapshotDigest(name);
  const asideBefore = (await newestSetAside(name))?.dir;
  const run = await startRun(name, args, step.kind === 'kill' ? step : undefined, context);
  const { result } = run;
  expect(result.json.outcome, `${context}no --json result: ${result.stderr}`).toMatch(/^(healthy|failed)$/);
  const missed = run.killed !== undefined && result.json.outcome === 'healthy' && run.killed === result.json.pid;
  const exact = run.killed === undefined || (step.kind === 'kill' && run.landedIn === step.state && !missed);
  if (exact) await expectAsPlanned(name, result, expectation, context);
  else console.warn(`cleanup: ${context}the kill landed in ${run.landedIn}${missed ? ', after the start ended healthy' : ''}: checking the invariants only`);

  const finalPid = result.json.outcome === 'healthy' && !missed ? (result.json.pid as number) : undefined;
  await expectNothingLeft(name, finalPid, run.killed, storeBefore, context);
  // A cold-booted QEMU that runs on keeps its RAM in the instance's memory file; nothing else does.
  if (!missed) expectColdMemory(name, finalPid !== undefined && result.json.path === 'cold', context);
  const after = await snapshotDigest(name);
  if (after !== undefined) expect(await snapshotProblem(name), `${context}the snapshot is not whole`).toBeUndefined();
  const aside = await newestSetAside(name);
  const setAside = aside !== undefined && aside.dir !== asideBefore;
  const failures = await resumeFailuresOf(name);
  if (exact) {
    if (expectation.snapshot === 'unchanged') expect(after, `${context}the good snapshot changed`).toBe(before);
    if (expectation.snapshot === 'replaced') expect(after !== undefined && after !== before, `${context}a new snapshot was captured`).toBe(true);
    if (expectation.snapshot === 'none') expect(after, `${context}no snapshot`).toBeUndefined();
    expect(setAside, `${context}the snapshot set aside (newest: ${aside?.dir}: ${aside?.reason})`).toBe(expectation.setAside !== undefined);
    if (setAside && expectation.setAside !== undefined) expect(aside?.reason, `${context}${aside?.dir}/reason.txt`).toMatch(new RegExp(expectation.setAside));
    if (expected.next.kind !== 'none') expect(failures, `${context}resume-failures of the snapshot`).toBe(expected.next.failures);
  }
  await stopAfter(name, result, missed, context);
  if (exact) return expected.next;
  // A kill that landed elsewhere may have let a capture through, or been counted: go by what is there.
  if (after === undefined) return NO_SNAPSHOT;
  const kind = after !== before ? 'good' : step.kind === 'agentStopped' ? 'noAgent' : model.kind;
  return { kind, failures };
}

/** Damages what the step needs damaged; returns the start's arguments. */
async function injectFault(name: string, configs: Configs, step: Step, model: SnapshotModel, context: string): Promise<string[]> {
  const config = ['--config', model.kind === 'noAgent' ? configs.short : configs.base];
  switch (step.kind) {
    case 'damage':
      await damageSnapshotFile(name, step.file, step.how);
      return config;
    case 'agentStopped':
      await coldStartWithoutAgent(name, configs.short, context);
      return ['--config', configs.short];
    case 'unhealthy':
      return ['--config', configs.unhealthy];
    case 'kill':
      return step.cold ? [...config, '--cold'] : config;
    default:
      return config;
  }
}

/**
 * After a start: no QEMU of a failed attempt lives (by the trace's launches, and by the instance's
 * QMP socket in every command line), the instance lock and every capture lock are released, no
 * temp file or half-made capture is left.
 */
async function expectNothingLeft(name: string, finalPid: number | undefined, killed: number | undefined, storeBefore: string[], context: string): Promise<void> {
  const paths = instancePaths(E2E_HOME, name);
  await expectOnlyFinalQemuLeft(name, await readTraceFile(paths.traceFile), finalPid, context);
  if (killed !== undefined) expect(await isProcessAlive(killed), `${context}the killed QEMU`).toBe(false);
  expect(existsSync(paths.lockFile), `${context}${paths.lockFile} is left`).toBe(false);
  expect(await captureLocks(), `${context}capture locks left`).toEqual([]);
  expect(
    (await storeLeftovers()).filter((path) => !storeBefore.includes(path)),
    `${context}left in the snapshot store`,
  ).toEqual([]);
  expect(await leftoversUnder(paths.dir), `${context}left in the instance folder`).toEqual([]);
}

/** The start ended the planned way: outcome, path, the state that failed or why it fell back, the whole trace. */
async function expectAsPlanned(name: string, result: CliResult, expectation: Expectation, context: string): Promise<void> {
  const said = JSON.stringify({ failedState: result.json.failedState, error: result.json.error, fallbackReason: result.json.fallbackReason });
  expect(result.json.outcome, `${context}${said}`).toBe(expectation.outcome);
  if (expectation.outcome === 'healthy') {
    expect(result.exitCode).toBe(0);
    expect(result.json.path, `${context}${said}`).toBe(expectation.path);
    if (expectation.fallbackReason === undefined) expect(result.json.fallbackReason, context).toBeUndefined();
    else expect(String(result.json.fallbackReason), context).toMatch(new RegExp(expectation.fallbackReason));
  } else {
    expect(result.exitCode, context).toBe(1);
    expect(result.json.failedState, `${context}${said}`).toBe(expectation.failedIn);
  }
  await expectTraceMatches(name, validateExpectedTrace({ states: expectation.states }, `${context}plan`));
}

/** `warmvm start`, and for a kill step, the kill at its state; never two QEMUs of the instance at once. */
async function startRun(
  name: string,
  args: string[],
  kill: Extract<Step, { kind: 'kill' }> | undefined,
  context: string,
): Promise<{ result: CliResult; killed?: number; landedIn?: string }> {
  const watch = watchInstanceQemus(name);
  const run = kill
    ? await startKillingQemuAt(name, args, kill.state, kill.delayMs, { freeze: freezesFirst(kill.state) })
    : { result: await cli(['start', '--name', name, '--json', ...args]) };
  const most = await watch.stop();
  expect(most.length, `${context}QEMUs of the instance alive at once: ${most.join(', ')}`).toBeLessThanOrEqual(1);
  return run;
}

/**
 * The first half of the agentStopped fault: a cold VM whose qemu-ga is stopped from inside,
 * through the agent itself, then captured so: every resume of that snapshot cannot rotate.
 */
async function coldStartWithoutAgent(name: string, config: string, context: string): Promise<void> {
  const storeBefore = await storeLeftovers();
  const cold = await cli(['start', '--name', name, '--cold', '--json', '--config', config]);
  expect(cold.json, `${context}${cold.stderr}`).toMatchObject({ outcome: 'healthy', path: 'cold' });
  await expectTraceMatches(name, 'cold.json');
  expectColdMemory(name, true, context);
  const socket = instancePaths(E2E_HOME, name).qgaSocket;
  const qga = await QgaClient.connect(socket, { timeoutMs: 10_000 });
  try {
    const stopped = await qga.exec('/bin/sh', ['-c', STOP_AGENT], { timeoutMs: 10_000 });
    expect(stopped.exitCode, `${context}stopping qemu-ga: ${stopped.stderr.toString()}`).toBe(0);
  } finally {
    await qga.close();
  }
  const deadline = Date.now() + 15_000;
  while (
    await QgaClient.connect(socket, { timeoutMs: 1_000 }).then(
      async (client) => {
        await client.close();
        return true;
      },
      () => false,
    )
  ) {
    if (Date.now() > deadline) throw new Error(`${context}the guest agent still answers`);
    await sleep(200);
  }
  const captured = await cli(['capture', '--name', name, '--json', '--config', config]);
  expect(captured.json, `${context}${captured.stderr}`).toMatchObject({ outcome: 'captured' });
  await expectTraceMatches(name, 'capture.json');
  // The capture's QEMU quit, its RAM file moved into the snapshot; nothing of the capture is left about.
  await expectNothingLeft(name, undefined, undefined, storeBefore, `${context}capture: `);
  expectColdMemory(name, false, `${context}capture: `);
  expect(await snapshotProblem(name), `${context}the agentless snapshot`).toBeUndefined();
  expect(await resumeFailuresOf(name), `${context}a new capture counts no failed resume`).toBe(0);
}

/** Stops what the step left running; a stop also proves the lock free and no runtime file left. */
async function stopAfter(name: string, result: CliResult, missed: boolean, context: string): Promise<void> {
  if (result.json.outcome === 'healthy' && !missed) {
    expect(await stopAndCheckTrace(name), context).toMatchObject({ pid: result.json.pid });
    return await expectStopped(name, context);
  }
  const stopped = await cli(['stop', '--name', name, '--json']);
  if (missed) {
    expect(stopped.json, `${context}stop: ${stopped.stderr}`).toMatchObject({ outcome: 'stale-cleaned' });
  } else {
    // A failed start must leave nothing running and nothing to clean: "not running", not "locked" or "stale".
    expect(stopped.json.error, `${context}stop after a failed start: ${JSON.stringify(stopped.json)}`).toMatchObject({ code: 'E_NOT_RUNNING' });
  }
  await expectStopped(name, context);
}

async function expectStopped(name: string, context: string): Promise<void> {
  expect(await liveInstanceQemus(name), `${context}QEMU after stop`).toEqual([]);
  expectNoRuntimeFiles(name, context);
  expectColdMemory(name, false, `${context}after stop: `);
}
