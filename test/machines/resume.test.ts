import { createActor, fromPromise, SimulatedClock, waitFor } from 'xstate';
import { describe, expect, it } from 'vitest';
import type { HealthResult, RotateResult } from '../../machines/cold-boot.js';
import { resumeMachine, type Incoming, type PreparedState, type ResumeOutput, type Resumed } from '../../machines/resume.js';
import { errorWithCode, fakeActor, type Outcome } from '../helpers/fake-actors.js';

const bounds = { prepareMs: 1_000, launchMs: 1_000, incomingMs: 1_000, contMs: 1_000, rotateMs: 1_000, healthMs: 1_000, stopMs: 1_000 };

async function run(options: {
  rotation?: boolean;
  prepare?: Outcome<PreparedState>;
  incoming?: Outcome<Incoming>;
  cont?: Outcome<Resumed>;
  rotate?: Outcome<RotateResult>;
  health?: Outcome<HealthResult[]>;
  /** Ctrl-C once this many actors were called. */
  cancelAfter?: number;
  /** A woken suspended state: its secrets are kept. */
  kept?: boolean;
}) {
  const calls: string[] = [];
  /** What each stopQemu was told: whether the failure counts against the snapshot. */
  const counted: boolean[] = [];
  const contInputs: { agentSoon: boolean }[] = [];
  const clock = new SimulatedClock();
  const machine = resumeMachine.provide({
    actors: {
      prepareState: fakeActor(options.prepare ?? { ok: { checked: [], forwards: 1, overlay: true } }, calls, 'prepare'),
      launchIncoming: fakeActor({ ok: { pid: 9 } }, calls, 'launch'),
      migrateIncoming: fakeActor(options.incoming ?? { ok: { runstate: 'paused' } }, calls, 'incoming'),
      cont: fakeActor(options.cont ?? { ok: { runstate: 'running' } }, calls, 'cont', contInputs),
      rotateSecrets: fakeActor(options.rotate ?? { ok: { secrets: 4, exitCode: 0 } }, calls, 'rotate'),
      probeHealth: fakeActor(options.health ?? { ok: [{ url: 'http://127.0.0.1:1/health', status: 200 }] }, calls, 'health'),
      stopQemu: fromPromise<{ how: string }, { countFailure: boolean; reason: string | undefined }>(async ({ input }) => {
        calls.push('stop');
        counted.push(input.countFailure);
        return { how: 'terminated' };
      }),
    },
  });
  const actor = createActor(machine, { input: { bounds, rotation: options.rotation ?? true, kept: options.kept ?? false }, clock });
  const states: string[] = [];
  actor.subscribe((snapshot) => {
    if (states.at(-1) !== snapshot.value) states.push(String(snapshot.value));
  });
  actor.start();
  for (let i = 0; i < 12 && actor.getSnapshot().status === 'active'; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (options.cancelAfter !== undefined && calls.length === options.cancelAfter) actor.send({ type: 'CANCEL' });
    clock.increment(5_000);
  }
  const final = await waitFor(actor, (snapshot) => snapshot.status === 'done', { timeout: 1_000 });
  return { output: final.output as ResumeOutput, calls, states, counted, contInputs };
}

describe('resume machine', () => {
  it('goes preparing → launching → incoming → paused → cont → rotating → probing → healthy', async () => {
    const { output, calls, states } = await run({});
    expect(states).toEqual(['preparing', 'launching', 'incoming', 'cont', 'rotating', 'probing', 'healthy']);
    expect(calls).toEqual(['prepare', 'launch', 'incoming', 'cont', 'rotate', 'health']);
    expect(output).toMatchObject({ outcome: 'healthy', pid: 9, rotated: true });
  });

  it('never sends cont unless the incoming migration left QEMU paused', async () => {
    for (const runstate of ['prelaunch', 'inmigrate', 'running']) {
      const { output, calls } = await run({ incoming: { ok: { runstate } } });
      expect(calls).not.toContain('cont');
      expect(calls.at(-1)).toBe('stop');
      expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'resume.incoming', code: 'E_NOT_PAUSED', message: expect.stringContaining(runstate) } });
    }
  });

  it('has cont begin the agent connection only when secrets go in next', async () => {
    expect((await run({})).contInputs).toEqual([{ agentSoon: true }]);
    expect((await run({ rotation: false })).contInputs).toEqual([{ agentSoon: false }]);
    expect((await run({ kept: true })).contInputs).toEqual([{ agentSoon: false }]);
  });

  it('skips rotation only when it was turned off, and says so in the output', async () => {
    const { output, calls } = await run({ rotation: false });
    expect(calls).not.toContain('rotate');
    expect(output).toMatchObject({ outcome: 'healthy', rotated: false });
  });

  it('a failed rotation is never healthy: QEMU is stopped and the reason kept', async () => {
    const { output, calls } = await run({ rotate: { fail: errorWithCode('rotate-secrets exited 2: line 3 is not hex', 'E_ROTATE') } });
    expect(calls).not.toContain('health');
    expect(calls.at(-1)).toBe('stop');
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'resume.rotating', code: 'E_ROTATE' } });
  });

  it('an incoming migration that hangs fails at its bound', async () => {
    const { output, calls } = await run({ incoming: 'hang' });
    expect(calls).toEqual(['prepare', 'launch', 'incoming', 'stop']);
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'resume.incoming', code: 'E_BOUND' } });
  });

  it('counts a failure against the snapshot only when its guest ran and then failed, and not for Ctrl-C', async () => {
    const health = { fail: errorWithCode('GET /health answered 503', 'E_HEALTH') };
    expect((await run({ health })).counted).toEqual([true]);
    expect((await run({ rotate: { fail: errorWithCode('rotate-secrets exited 2', 'E_ROTATE') } })).counted).toEqual([true]);
    expect((await run({ rotate: 'hang' })).counted).toEqual([true]);
    expect((await run({ incoming: { ok: { runstate: 'running' } } })).counted).toEqual([false]);
    expect((await run({ prepare: { fail: errorWithCode('mem.raw is missing', 'E_SNAPSHOT_MISSING') } })).counted).toEqual([false]);
    const cancelled = await run({ rotate: 'hang', cancelAfter: 5 });
    expect(cancelled.output).toMatchObject({ outcome: 'failed', failure: { state: 'resume.rotating', code: 'E_INTERRUPTED' } });
    expect(cancelled.counted).toEqual([false]);
    expect((await run({})).counted).toEqual([]);
  });
});
