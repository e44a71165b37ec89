import { createActor, SimulatedClock, waitFor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { errorWithCode as withCode, fakeActor as fake, type Outcome } from '../helpers/fake-actors.js';
import {
  coldBootMachine,
  type ColdBootOutput,
  type GuestUp,
  type HealthResult,
  type LaunchResult,
  type PreparedBoot,
  type RotateResult,
  type StopResult,
} from '../../machines/cold-boot.js';

const bounds = { coldPrepareMs: 4_000, launchMs: 1_000, bootMs: 5_000, rotateMs: 2_000, healthMs: 3_000, stopMs: 2_000 };

async function run(outcomes: {
  prepare?: Outcome<PreparedBoot>;
  launch?: Outcome<LaunchResult>;
  guest?: Outcome<GuestUp>;
  health?: Outcome<HealthResult[]>;
  stop?: Outcome<StopResult>;
  rotate?: Outcome<RotateResult>;
  rotation?: boolean;
  cancelAfterTicks?: boolean;
}) {
  const calls: string[] = [];
  const clock = new SimulatedClock();
  const machine = coldBootMachine.provide({
    actors: {
      prepareBoot: fake(outcomes.prepare ?? { ok: { forwards: 1, overlay: true, runtimeDisk: true } }, calls, 'prepare'),
      launchQemu: fake(outcomes.launch ?? { ok: { pid: 42 } }, calls, 'launch'),
      waitForGuest: fake(outcomes.guest ?? { ok: { runstate: 'running', agent: true } }, calls, 'guest'),
      rotateSecrets: fake(outcomes.rotate ?? { ok: { secrets: 4, exitCode: 0 } }, calls, 'rotate'),
      probeHealth: fake(outcomes.health ?? { ok: [{ url: 'http://127.0.0.1:1/health', status: 200 }] }, calls, 'health'),
      stopQemu: fake(outcomes.stop ?? { ok: { how: 'terminated' } }, calls, 'stop'),
    },
  });
  const actor = createActor(machine, { input: { bounds, rotation: outcomes.rotation ?? false, capturing: outcomes.rotation === undefined }, clock });
  const states: string[] = [];
  actor.subscribe((snapshot) => {
    const value = String(snapshot.value);
    if (states.at(-1) !== value) states.push(value);
  });
  actor.start();
  // Let promise actors settle, then move simulated time past every bound.
  for (let i = 0; i < 10 && actor.getSnapshot().status === 'active'; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (outcomes.cancelAfterTicks) {
      if (i === 2) actor.send({ type: 'CANCEL' });
      if (i <= 2) continue; // no bound may pass before the Ctrl-C
    }
    clock.increment(10_000);
  }
  const final = await waitFor(actor, (snapshot) => snapshot.status === 'done', { timeout: 1_000 });
  return { output: final.output as ColdBootOutput, calls, states };
}

describe('coldBoot machine', () => {
  it('launches, boots, probes and is ready', async () => {
    const { output, calls, states } = await run({});
    expect(states).toEqual(['preparing', 'launching', 'booting', 'probing', 'ready']);
    expect(calls).toEqual(['prepare', 'launch', 'guest', 'health']);
    expect(output).toEqual({ outcome: 'ready', pid: 42, health: [{ url: 'http://127.0.0.1:1/health', status: 200 }], rotated: false });
  });

  it('rotates before probing when asked, and a failed rotation stops QEMU', async () => {
    const rotated = await run({ rotation: true });
    expect(rotated.states).toEqual(['preparing', 'launching', 'booting', 'rotating', 'probing', 'ready']);
    expect(rotated.output).toMatchObject({ outcome: 'ready', rotated: true });
    const failed = await run({ rotation: true, rotate: { fail: withCode('rotate-secrets exited 2', 'E_ROTATE') } });
    expect(failed.calls).toEqual(['prepare', 'launch', 'guest', 'rotate', 'stop']);
    expect(failed.output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.rotating', code: 'E_ROTATE' } });
  });

  it('stops QEMU when the guest fails, and keeps the reason and its fix', async () => {
    const { output, calls, states } = await run({ guest: { fail: withCode('QEMU exited (exit code 1)', 'E_QEMU_EXITED') } });
    expect(states).toEqual(['preparing', 'launching', 'booting', 'stopping', 'failed']);
    expect(calls).toEqual(['prepare', 'launch', 'guest', 'stop']);
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.booting', code: 'E_QEMU_EXITED', hint: 'do the thing' } });
  });

  it('a passed bound fails the state by name and still stops QEMU', async () => {
    const { output, calls } = await run({ health: 'hang' });
    expect(calls).toEqual(['prepare', 'launch', 'guest', 'health', 'stop']);
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.probing', code: 'E_BOUND' } });
    expect(output.outcome === 'failed' && output.failure.message).toContain('3 s');
  });

  it('a failed launch still goes through stopping', async () => {
    const { output, calls } = await run({ launch: { fail: withCode('spawn failed', 'E_QEMU_SPAWN') } });
    expect(calls).toEqual(['prepare', 'launch', 'stop']);
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.launching' } });
  });

  it('a stop that hangs is bounded too, and said in the output', async () => {
    const { output } = await run({ guest: { fail: withCode('boom', 'E_X') }, stop: 'hang' });
    expect(output).toMatchObject({ outcome: 'failed', stopError: expect.stringContaining('did not stop') });
  });

  it('Ctrl-C while waiting stops QEMU and says it was interrupted', async () => {
    const { output, calls } = await run({ guest: 'hang', cancelAfterTicks: true });
    expect(calls.at(-1)).toBe('stop');
    expect(output).toMatchObject({ outcome: 'failed', failure: { code: 'E_INTERRUPTED' } });
  });

  it('a failed preparation stops (nothing was launched) and fails in preparing, with the reason', async () => {
    const { output, calls, states } = await run({ prepare: { fail: withCode('no free host port for 8080', 'E_PORT_TAKEN') } });
    expect(states).toEqual(['preparing', 'stopping', 'failed']);
    expect(calls).toEqual(['prepare', 'stop']);
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.preparing', code: 'E_PORT_TAKEN', hint: 'do the thing' }, stopError: undefined });
  });

  it('a preparation past its bound fails by name, with its own bound and hint, and launches nothing', async () => {
    const { output, calls } = await run({ prepare: 'hang' });
    expect(calls).toEqual(['prepare', 'stop']);
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.preparing', code: 'E_BOUND', hint: expect.stringContaining('warmvm home') } });
    expect(output.outcome === 'failed' && output.failure.message).toContain('within 4 s');
  });

  it('Ctrl-C while preparing ends in failed with no QEMU launched', async () => {
    const { output, calls, states } = await run({ prepare: 'hang', cancelAfterTicks: true });
    expect(states).toEqual(['preparing', 'stopping', 'failed']);
    expect(calls).not.toContain('launch');
    expect(calls).toEqual(['prepare', 'stop']);
    expect(output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.preparing', code: 'E_INTERRUPTED' } });
  });
});
