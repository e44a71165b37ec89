import { createActor, fromPromise, SimulatedClock, waitFor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { captureMachine, type Migrated } from '../../machines/capture.js';
import { coldBootMachine } from '../../machines/cold-boot.js';
import { resumeMachine, type PreparedState } from '../../machines/resume.js';
import { startMachine, type CaptureWait, type PullResult, type SnapshotChoice, type StartBounds, type StartOutput, type SuspendedChoice } from '../../machines/start.js';
import { errorWithCode } from '../helpers/fake-actors.js';
import { brokenInvariants } from '../helpers/invariants.js';
import { runWorld, type WorldRun } from '../helpers/world-run.js';
import { BOUND_MS, uniformBounds, type Script } from '../helpers/fake-world.js';

const bounds: StartBounds = uniformBounds(1_000);
const usable: SnapshotChoice = { status: 'usable', failuresInARow: 0 };

/** A world of fake actors that counts live QEMUs, so "at most one at a time" can be checked. */
function world(faults: {
  snapshot?: SnapshotChoice;
  awaited?: CaptureWait;
  setAsideCapturing?: boolean;
  resumeFails?: string[];
  captureFails?: boolean;
  /** QEMU dies under the capture's migration: nothing is left to keep. */
  captureQemuExits?: boolean;
  /** The failed capture's VM cannot be run again (QEMU died with the migration). */
  continueFails?: boolean;
  /** The capture fails after QEMU quit, while storing: there is no VM left to keep. */
  storeFails?: boolean;
  /** What pullSnapshot answers; `throw` rejects, `hang` never settles. */
  pull?: PullResult | 'throw' | 'hang';
  /** What findSuspended answers (`none` when left out). */
  suspended?: SuspendedChoice;
  /** The first N cold boots' QEMUs die while booting, by this code (E_QEMU_CRASHED: QEMU's own SIGABRT, say). */
  coldDies?: { times: number; code: string };
}) {
  const calls: string[] = [];
  let live = 0;
  let maxLive = 0;
  let resumes = 0;
  let coldBoots = 0;
  // Typed loosely on purpose: each fake stands in for an actor of its own output type.
  const step = <T>(name: string, fn: () => T): never =>
    fromPromise<T, unknown>(async () => {
      calls.push(name);
      return fn();
    }) as never;
  const launch = (name: string) =>
    step(name, () => {
      live += 1;
      maxLive = Math.max(maxLive, live);
      return { pid: 100 + calls.length };
    });
  const stop = (name: string) =>
    step(name, () => {
      live = Math.max(0, live - 1);
      return { how: 'terminated' };
    });
  const health = [{ url: 'http://127.0.0.1:1/health', status: 200 }];
  const machine = startMachine.provide({
    actors: {
      preflight: step('preflight', () => ({ qemuVersion: '10.0.2', machineType: 'pc-q35-10.0' })),
      prepareImage: step('image', () => ({ image: 'demo', built: false })),
      chooseAccelerator: step('accel', () => ({ accel: 'tcg', reason: 'test' })),
      findSuspended: step('suspended', () => faults.suspended ?? { status: 'none' }),
      chooseSnapshot: step('choose', () => faults.snapshot ?? { status: 'missing' }),
      awaitCapture: step('awaitCapture', () => faults.awaited ?? { status: 'usable', failuresInARow: 0 }),
      setAsideSnapshot: step('setAside', () => ({ setAside: '/s/x.set-aside', capturing: faults.setAsideCapturing ?? true })),
      pullSnapshot: fromPromise<PullResult, void>(async () => {
        calls.push('pull');
        if (faults.pull === 'throw') throw errorWithCode('registry unreachable: connect ECONNREFUSED 127.0.0.1:5000', 'E_REGISTRY_UNREACHABLE');
        if (faults.pull === 'hang') return await new Promise<never>(() => undefined);
        return faults.pull ?? { status: 'usable', failuresInARow: 0, digest: 'sha256:fake' };
      }),
      coldBoot: coldBootMachine.provide({
        actors: {
          prepareBoot: step('cold.prepare', () => ({ forwards: 1, overlay: true, runtimeDisk: true })),
          launchQemu: launch('cold.launch'),
          waitForGuest: step('cold.guest', () => {
            coldBoots += 1;
            if (faults.coldDies && coldBoots <= faults.coldDies.times) {
              live = Math.max(0, live - 1);
              throw errorWithCode(`QEMU crashed (killed by SIGABRT) while waiting for the guest agent; it said:\nqemu: assertion failed`, faults.coldDies.code);
            }
            return { runstate: 'running', agent: true };
          }),
          rotateSecrets: step('cold.rotate', () => ({ secrets: 4, exitCode: 0 })),
          probeHealth: step('cold.health', () => health),
          stopQemu: stop('cold.stop'),
        },
      }),
      capture: captureMachine.provide({
        actors: {
          pauseVm: step('capture.pause', () => ({ runstate: 'paused' })),
          migrateToFile: fromPromise<Migrated, void>(async () => {
            calls.push('capture.migrate');
            if (faults.captureFails) throw errorWithCode('migration failed: disk full', 'E_MIGRATION');
            if (faults.captureQemuExits) throw errorWithCode('QEMU exited (killed by SIGKILL) while migrating to file', 'E_QEMU_EXITED');
            return { stateBytes: 1, ms: 1 };
          }),
          quitQemu: stop('capture.quit'),
          storeSnapshot: fromPromise<{ snapshot: string; memoryDataBytes: number }, void>(async () => {
            calls.push('capture.store');
            if (faults.storeFails) throw errorWithCode('ENOSPC: no space left on device, write', 'ENOSPC');
            return { snapshot: '/s/x', memoryDataBytes: 1 };
          }),
          recoverVm: fromPromise<{ dropped: string[] }, void>(async () => {
            calls.push('capture.recover');
            live = Math.max(0, live - 1);
            return { dropped: ['the cold-booted QEMU'] };
          }),
          continueVm: fromPromise<{ runstate: string; pid: number }, void>(async () => {
            calls.push('capture.continue');
            if (faults.continueFails) throw errorWithCode('QEMU exited', 'E_QEMU_EXITED');
            return { runstate: 'running', pid: 1 };
          }),
          rotateSecrets: step('capture.rotate', () => ({ secrets: 4, exitCode: 0 })),
          probeHealth: step('capture.health', () => health),
        },
      }),
      resume: resumeMachine.provide({
        actors: {
          // Damage to the snapshot shows while reading it; any other fault, at rotation.
          prepareState: fromPromise<PreparedState, void>(async () => {
            calls.push('resume.prepare');
            const code = faults.resumeFails?.[resumes];
            if (code?.startsWith('E_SNAPSHOT')) {
              resumes += 1;
              throw errorWithCode(`resume fault ${code}`, code);
            }
            return { checked: [], forwards: 1, overlay: true };
          }),
          launchIncoming: launch('resume.launch'),
          migrateIncoming: step('resume.incoming', () => ({ runstate: 'paused' })),
          cont: step('resume.cont', () => ({ runstate: 'running' })),
          rotateSecrets: fromPromise<{ secrets: number; exitCode: number }, void>(async () => {
            calls.push('resume.rotate');
            const code = faults.resumeFails?.[resumes];
            resumes += 1;
            if (code) throw errorWithCode(`resume fault ${code}`, code);
            return { secrets: 4, exitCode: 0 };
          }),
          probeHealth: step('resume.health', () => health),
          stopQemu: stop('resume.stop'),
        },
      }),
    },
  });
  return { machine, calls, maxLive: () => maxLive };
}

async function run(faults: Parameters<typeof world>[0], input: { forceCold?: boolean; capture?: boolean; rotation?: boolean; pull?: boolean } = {}) {
  const w = world(faults);
  const clock = new SimulatedClock();
  const actor = createActor(w.machine, {
    input: { bounds, forceCold: input.forceCold ?? false, capture: input.capture ?? true, rotation: input.rotation ?? true, pull: input.pull ?? false },
    clock,
  });
  actor.start();
  if (faults.pull === 'hang') {
    // The pull never answers: its bound passes on the simulated clock.
    await waitFor(actor, (snapshot) => snapshot.matches('pulling'), { timeout: 2_000 });
    clock.increment(bounds.pullMs);
  }
  const final = await waitFor(actor, (snapshot) => snapshot.status === 'done', { timeout: 2_000 });
  return { output: final.output as StartOutput, calls: w.calls, maxLive: w.maxLive() };
}

describe('start machine', () => {
  it('a first start goes cold → capture → resume, the cold VM unrotated and the resume rotated', async () => {
    const { output, calls, maxLive } = await run({});
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', fallbackReason: undefined, rotated: true });
    expect(calls).not.toContain('cold.rotate');
    expect(calls).toContain('resume.rotate');
    expect(calls.indexOf('capture.quit')).toBeLessThan(calls.indexOf('resume.launch'));
    expect(maxLive).toBe(1);
  });

  it('a usable snapshot resumes', async () => {
    const { output, calls } = await run({ snapshot: usable });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'resume' });
    expect(calls.some((call) => call.startsWith('cold.'))).toBe(false);
  });

  it('a failed rotation falls back to a cold boot, once, keeps the snapshot and says why', async () => {
    const { output, calls, maxLive } = await run({ snapshot: usable, resumeFails: ['E_ROTATE'] });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold', fallbackReason: expect.stringContaining('resume.rotating') });
    expect(calls).not.toContain('setAside');
    expect(calls).toContain('cold.rotate');
    expect(calls.indexOf('resume.stop')).toBeLessThan(calls.indexOf('cold.launch'));
    expect(maxLive).toBe(1);
  });

  it('a damaged snapshot is set aside, and the cold boot captures a new one', async () => {
    const { output, calls } = await run({ snapshot: usable, resumeFails: ['E_SNAPSHOT_CORRUPT'] });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', fallbackReason: expect.stringContaining('resume fault E_SNAPSHOT_CORRUPT') });
    expect(calls).toContain('setAside');
  });

  it('the fallback is taken at most once: a second resume failure fails the start', async () => {
    const { output, maxLive } = await run({ snapshot: usable, resumeFails: ['E_SNAPSHOT_CORRUPT', 'E_ROTATE'] });
    expect(output).toMatchObject({ outcome: 'failed', failure: { code: 'E_ROTATE' } });
    expect(maxLive).toBe(1);
  });

  it('a mismatched snapshot (set aside while choosing) is the fallback reason; a new one is captured', async () => {
    const { output } = await run({ snapshot: { status: 'setAside', reason: "the snapshot's QEMU version is 9.2.0, this host's is 10.0.2" } });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', fallbackReason: expect.stringContaining('9.2.0') });
  });

  it('--cold boots cold with rotation and neither reads nor makes a snapshot', async () => {
    const { output, calls } = await run({ snapshot: usable }, { forceCold: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold', rotated: true });
    expect(calls.some((call) => call === 'choose' || call.startsWith('capture.') || call.startsWith('resume.'))).toBe(false);
  });

  it('--no-rotation warns in the output and never rotates', async () => {
    const { output, calls } = await run({}, { rotation: false });
    expect(output).toMatchObject({ outcome: 'healthy', rotated: false, warnings: [expect.stringContaining('placeholder secrets')] });
    expect(calls.some((call) => call.endsWith('.rotate'))).toBe(false);
  });

  it('a capture that fails while the VM is paused keeps that VM: it runs again, rotates, and the start ends healthy on it with a warning', async () => {
    const { output, calls, maxLive } = await run({ captureFails: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold+capture', fallbackReason: undefined, rotated: true, warnings: [expect.stringContaining('capture.migrating')] });
    expect(calls.filter((call) => call === 'cold.launch')).toHaveLength(1);
    expect(calls.slice(calls.indexOf('capture.migrate'))).toEqual(['capture.migrate', 'capture.continue', 'capture.rotate', 'capture.health']);
    expect(maxLive).toBe(1);
  });

  it('a failed capture whose VM cannot run again, or that failed after QEMU quit, drops its QEMU and falls back to a cold boot that rotates', async () => {
    for (const faults of [{ captureFails: true, continueFails: true }, { storeFails: true }]) {
      const { output, calls, maxLive } = await run(faults);
      expect(output).toMatchObject({ outcome: 'healthy', path: 'cold', fallbackReason: expect.stringMatching(/capture\.(continuing|storing)/) });
      expect(calls.filter((call) => call === 'cold.launch')).toHaveLength(2);
      expect(calls).toContain('cold.rotate');
      expect(maxLive).toBe(1);
    }
  });

  it('a capture whose QEMU died under it keeps nothing: no continuing, the fallback names the capture step that failed', async () => {
    const { output, calls, maxLive } = await run({ captureQemuExits: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold', fallbackReason: expect.stringMatching(/^capture\.migrating: QEMU exited/) });
    expect(calls).not.toContain('capture.continue');
    expect(calls.filter((call) => call === 'cold.launch')).toHaveLength(2);
    expect(maxLive).toBe(1);
  });

  it('a cold boot whose QEMU crashed by itself is booted once more, with a warning; the path names the boot that ran', async () => {
    const { output, calls, maxLive } = await run({ coldDies: { times: 1, code: 'E_QEMU_CRASHED' } });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
    expect(calls.filter((call) => call === 'cold.launch')).toHaveLength(2);
    expect(output.warnings).toEqual([
      'QEMU crashed in coldBoot.booting (QEMU crashed (killed by SIGABRT) while waiting for the guest agent), so the cold boot was tried once more',
    ]);
    expect(maxLive).toBe(1);
  });

  it('a second crash ends the start with it; a QEMU killed from outside (E_QEMU_EXITED) is not booted again', async () => {
    const twice = await run({ coldDies: { times: 2, code: 'E_QEMU_CRASHED' } });
    expect(twice.output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.booting', code: 'E_QEMU_CRASHED' } });
    expect(twice.calls.filter((call) => call === 'cold.launch')).toHaveLength(2);
    const killed = await run({ coldDies: { times: 1, code: 'E_QEMU_EXITED' } });
    expect(killed.output).toMatchObject({ outcome: 'failed', failure: { code: 'E_QEMU_EXITED' } });
    expect(killed.calls.filter((call) => call === 'cold.launch')).toHaveLength(1);
  });

  it('Ctrl-C while the cold boot prepares ends the start in failed, with no QEMU launched', async () => {
    // Calls: preflight, image, accel, choose, cold.prepare (the 5th, which hangs): Ctrl-C comes then.
    const run = await runWorld(
      { behaviours: { 'cold.prepare': [{ kind: 'hang' }] }, snapshot: 'missing', incomingRunstate: 'paused', cancelAtCall: 6 },
      { forceCold: false, capture: true, rotation: true },
    );
    expect(run.world.calls).toEqual(['preflight', 'image', 'accel', 'suspended', 'choose', 'cold.prepare', 'cold.stop']);
    expect(run.world.launched).toEqual([]);
    expect(run.output).toMatchObject({ outcome: 'failed', failure: { state: 'coldBoot.preparing', code: 'E_INTERRUPTED' }, stopError: undefined, path: 'cold' });
    expect(run.trace.map((entry) => entry.state).slice(-5)).toEqual(['start.coldBoot', 'coldBoot.preparing', 'coldBoot.stopping', 'coldBoot.failed', 'start.failed']);
    expect(brokenInvariants(run)).toEqual([]);
  });
});

const FLAGS = { forceCold: false, capture: true, rotation: true };

/** A scripted world where nothing fails unless `over` says so. */
function script(over: Partial<Script>): Script {
  return { behaviours: {}, snapshot: 'usable', incomingRunstate: 'paused', cancelAtCall: undefined, ...over };
}

/** The root machine's states, in order. */
function startStates(run: WorldRun): string[] {
  return run.trace.filter((entry) => entry.machine === 'start').map((entry) => entry.state);
}

describe("start machine: pulling a snapshot from the config's registry", () => {
  it('no snapshot here: the pull stores one and the start resumes it, with no cold boot', async () => {
    const { output, calls } = await run({}, { pull: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'pull+resume', fallbackReason: undefined, warnings: [] });
    expect(calls.some((call) => call.startsWith('cold.'))).toBe(false);
  });

  it('a snapshot set aside here (another QEMU, say) is replaced by a pull too', async () => {
    const { output } = await run({ snapshot: { status: 'setAside', reason: 'QEMU changed' } }, { pull: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'pull+resume' });
  });

  it('a usable snapshot here is resumed without pulling', async () => {
    const { output, calls } = await run({ snapshot: usable }, { pull: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'resume' });
    expect(calls).not.toContain('pull');
  });

  it('a pull that gives no usable snapshot boots cold and captures, with the reason as a warning', async () => {
    const { output, calls } = await run({ pull: { status: 'failed', reason: 'it was captured with QEMU 9.2.0' } }, { pull: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', fallbackReason: undefined });
    expect(output.warnings).toEqual([expect.stringContaining('captured with QEMU 9.2.0')]);
    expect(calls).toContain('capture.store');
  });

  it('a pull that throws, or outlasts its bound, boots cold instead of failing the start', async () => {
    for (const pull of ['throw', 'hang'] as const) {
      const { output } = await run({ pull }, { pull: true });
      expect(output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
      expect(output.warnings).toEqual([expect.stringContaining(pull === 'throw' ? 'ECONNREFUSED' : 'did not finish within 1 s')]);
    }
  });

  it('--cold never pulls', async () => {
    const { output, calls } = await run({}, { pull: true, forceCold: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold' });
    expect(calls).not.toContain('pull');
  });
});

describe('start machine: another start is capturing the same config', () => {
  it('waits in awaitingCapture, then resumes the snapshot the other start captured', async () => {
    const run = await runWorld(script({ snapshot: 'capturing', awaited: 'usable' }), FLAGS);
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'resume', fallbackReason: undefined, rotated: true });
    expect(startStates(run).slice(4)).toEqual(['start.choosing', 'start.awaitingCapture', 'start.resume', 'start.running']);
    expect(run.world.calls.slice(0, 7)).toEqual(['preflight', 'image', 'accel', 'suspended', 'choose', 'awaitCapture', 'resume.prepare']);
    expect(run.world.calls.some((call) => call.startsWith('cold.') || call.startsWith('capture.'))).toBe(false);
    expect(brokenInvariants(run)).toEqual([]);
  });

  it('the other start let go of the lock without a snapshot: this one boots cold and captures it', async () => {
    const run = await runWorld(script({ snapshot: 'capturing', awaited: 'missing' }), FLAGS);
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', fallbackReason: undefined, rotated: true });
    expect(startStates(run).slice(4, 8)).toEqual(['start.choosing', 'start.awaitingCapture', 'start.coldBoot', 'start.capture']);
    // The cold VM is about to be captured: it keeps its placeholders, and the resume rotates.
    expect(run.world.calls).not.toContain('cold.rotate');
    expect(run.world.calls).toContain('capture.store');
    expect(run.world.storeVersion).toBe(1);
    expect(brokenInvariants(run)).toEqual([]);
  });

  it('a capture that never lets go fails the start at the captureWaitMs bound, saying what it waited for', async () => {
    const run = await runWorld(script({ snapshot: 'capturing', behaviours: { awaitCapture: [{ kind: 'hang' }] } }), FLAGS);
    expect(run.output).toMatchObject({
      outcome: 'failed',
      failure: {
        state: 'start.awaitingCapture',
        code: 'E_BOUND',
        message: 'another start capturing a snapshot of this config did not happen within 1 s (state start.awaitingCapture)',
        hint: expect.stringContaining('warmvm list'),
      },
      stopError: undefined,
      path: '',
    });
    expect(run.elapsedMs).toBe(BOUND_MS);
    expect(run.world.launched).toEqual([]);
    expect(startStates(run).slice(-3)).toEqual(['start.choosing', 'start.awaitingCapture', 'start.failed']);
    expect(brokenInvariants(run)).toEqual([]);
  });

  it('Ctrl-C while awaitingCapture ends the start in failed at once, with no QEMU launched', async () => {
    // Calls: preflight, image, accel, choose, awaitCapture (the 5th, which hangs): Ctrl-C comes then.
    const run = await runWorld(script({ snapshot: 'capturing', behaviours: { awaitCapture: [{ kind: 'hang' }] }, cancelAtCall: 6 }), FLAGS);
    expect(run.output).toMatchObject({ outcome: 'failed', failure: { state: 'start.awaitingCapture', code: 'E_INTERRUPTED' }, stopError: undefined });
    expect(run.world.calls).toEqual(['preflight', 'image', 'accel', 'suspended', 'choose', 'awaitCapture']);
    expect(run.world.launched).toEqual([]);
    expect(run.elapsedMs).toBe(0);
    expect(brokenInvariants(run)).toEqual([]);
  });

  it('--no-capture does not wait for another start: it boots cold and captures nothing', async () => {
    const run = await runWorld(script({ snapshot: 'capturing' }), { ...FLAGS, capture: false });
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold', rotated: true });
    expect(run.world.calls).not.toContain('awaitCapture');
    expect(run.world.calls.some((call) => call.startsWith('capture.'))).toBe(false);
    expect(brokenInvariants(run)).toEqual([]);
  });
});

describe('start machine: setting a snapshot aside', () => {
  it('another start took the capture lock while this one set the snapshot aside: the cold boot does not capture, and rotates', async () => {
    const run = await runWorld(script({ behaviours: { 'resume.prepare': [{ kind: 'fail', code: 'E_SNAPSHOT_CORRUPT' }] }, setAsideCapturing: false }), FLAGS);
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold', rotated: true, fallbackReason: expect.stringContaining('resume.preparing') });
    expect(startStates(run)).toContain('start.settingAside');
    expect(run.world.calls).toContain('cold.rotate');
    expect(run.world.calls.some((call) => call.startsWith('capture.'))).toBe(false);
    expect(brokenInvariants(run)).toEqual([]);
  });

  it('the same with the capture lock: the cold boot captures anew', async () => {
    const run = await runWorld(script({ behaviours: { 'resume.prepare': [{ kind: 'fail', code: 'E_SNAPSHOT_CORRUPT' }] }, setAsideCapturing: true }), FLAGS);
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
    expect(brokenInvariants(run)).toEqual([]);
  });

  it('a first rotation failure after cont falls back to a cold boot, keeping the snapshot', async () => {
    const run = await runWorld(script({ failuresInARow: 0, behaviours: { 'resume.rotate': [{ kind: 'fail', code: 'E_ROTATE' }] } }), FLAGS);
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold', rotated: true, fallbackReason: expect.stringContaining('resume.rotating') });
    expect(startStates(run)).not.toContain('start.settingAside');
    expect(run.world.setAsides).toEqual([]);
    expect(run.world.calls.some((call) => call.startsWith('capture.'))).toBe(false);
    expect(brokenInvariants(run)).toEqual([]);
  });

  for (const [actor, state, code] of [
    ['resume.rotate', 'resume.rotating', 'E_ROTATE'],
    ['resume.health', 'resume.probing', 'E_HEALTH'],
  ] as const) {
    it(`a second failure in a row in ${state} sets the snapshot aside and the cold boot captures anew`, async () => {
      const run = await runWorld(script({ failuresInARow: 1, behaviours: { [actor]: [{ kind: 'fail', code }] } }), FLAGS);
      expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', fallbackReason: expect.stringContaining(state) });
      expect(startStates(run).slice(5, 9)).toEqual(['start.resume', 'start.settingAside', 'start.coldBoot', 'start.capture']);
      expect(run.world.setAsides).toEqual([expect.stringMatching(new RegExp(`^${state.replace('.', '\\.')}: `))]);
      expect(run.world.calls).not.toContain('cold.rotate');
      expect(brokenInvariants(run)).toEqual([]);
    });
  }

  it('the count comes from awaitingCapture too: the snapshot waited for, failing a second time in a row, is set aside', async () => {
    const run = await runWorld(
      script({ snapshot: 'capturing', awaited: 'usable', failuresInARow: 1, behaviours: { 'resume.rotate': [{ kind: 'fail', code: 'E_ROTATE' }] } }),
      FLAGS,
    );
    expect(run.world.choices).toEqual([
      { status: 'capturing', holder: expect.any(Number) },
      { status: 'usable', failuresInARow: 1 },
    ]);
    expect(startStates(run).slice(4, 10)).toEqual(['start.choosing', 'start.awaitingCapture', 'start.resume', 'start.settingAside', 'start.coldBoot', 'start.capture']);
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
    expect(brokenInvariants(run)).toEqual([]);
  });

  it('the same failure after a wait whose snapshot had not failed before only falls back', async () => {
    const run = await runWorld(
      script({ snapshot: 'capturing', awaited: 'usable', failuresInARow: 0, behaviours: { 'resume.rotate': [{ kind: 'fail', code: 'E_ROTATE' }] } }),
      FLAGS,
    );
    expect(startStates(run)).not.toContain('start.settingAside');
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold' });
    expect(brokenInvariants(run)).toEqual([]);
  });

  it('a failure before cont (launching) is not counted: even after a failed resume, no set-aside', async () => {
    const run = await runWorld(script({ failuresInARow: 1, behaviours: { 'resume.launch': [{ kind: 'fail', code: 'E_QMP' }] } }), FLAGS);
    expect(run.output).toMatchObject({ outcome: 'healthy', path: 'cold', fallbackReason: expect.stringContaining('resume.launching') });
    expect(run.world.setAsides).toEqual([]);
    expect(brokenInvariants(run)).toEqual([]);
  });
});

describe('start machine: an instance that `stop --suspend` kept', () => {
  const wakeable: SuspendedChoice = { status: 'wakeable', suspendedAt: '2026-12-02T10:00:00.000Z', secrets: true };

  it('wakes it before any snapshot is looked at, with the secrets it had: nothing rotated, and it says so', async () => {
    const { output, calls, maxLive } = await run({ suspended: wakeable, snapshot: usable });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'wake', rotated: false, kept: true, fallbackReason: undefined, warnings: [] });
    expect(calls).not.toContain('choose');
    expect(calls).not.toContain('resume.rotate');
    expect(maxLive).toBe(1);
  });

  it('a state suspended without fresh secrets (--no-rotation then) is rotated when this start wants rotation', async () => {
    const { output, calls } = await run({ suspended: { ...wakeable, secrets: false } });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'wake', rotated: true, kept: false });
    expect(calls).toContain('resume.rotate');
  });

  it('a state set aside (the config changed) is a warning, and the start goes on to the snapshot', async () => {
    const { output, calls } = await run({ suspended: { status: 'setAside', reason: 'the config changed since the suspend: memoryMb 256 → 320' }, snapshot: usable });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'resume', kept: false, fallbackReason: undefined });
    expect(output.warnings).toEqual(['the suspended state was set aside: the config changed since the suspend: memoryMb 256 → 320']);
    expect(calls).toContain('choose');
  });

  it('a wake that fails is stopped, warned about, and the start resumes the snapshot, its one fallback still unused', async () => {
    const { output, calls, maxLive } = await run({ suspended: wakeable, snapshot: usable, resumeFails: ['E_SNAPSHOT_CORRUPT', 'E_ROTATE'] });
    // The snapshot's resume failed too: the fallback edge to a cold boot was still there to take.
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold', fallbackReason: expect.stringContaining('resume.rotating') });
    expect(output.warnings.join('\n')).toContain('waking the suspended state failed, so it was set aside: resume.preparing: resume fault E_SNAPSHOT_CORRUPT');
    expect(calls.filter((call) => call === 'resume.prepare')).toHaveLength(2);
    expect(maxLive).toBe(1);
  });

  it('--cold leaves the state for a later start: it is not even read', async () => {
    const { output, calls } = await run({ suspended: wakeable }, { forceCold: true });
    expect(output).toMatchObject({ outcome: 'healthy', path: 'cold', kept: false });
    expect(calls).not.toContain('suspended');
  });
});
