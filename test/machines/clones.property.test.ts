import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CLONE_BOUNDS, clonesArb, describeClones, orderedRace, runClones, startStates, type CloneSpec, type ClonesRun, type Hold } from '../helpers/clones-run.js';
import type { StoreFaults } from '../helpers/fake-store.js';
import { BOUND_MS, type Behaviour, type Script } from '../helpers/fake-world.js';
import { brokenInvariants } from '../helpers/invariants.js';
import { propertyParams } from '../helpers/property-params.js';
import { schedulerSeedArb, seededScheduler } from '../helpers/seeded-scheduler.js';

/*
 * Clones of one config: 2 to 4 start machines run at once, each on a World of its own (its own
 * instance, its own QEMUs) and all on one snapshot store model (test/helpers/fake-store.ts), whose
 * capture lock, capture folders and published versions their steps use as steps/start.ts,
 * capture.ts, resume.ts and hand-off.ts do, every await a point where another run may go first.
 * Each run's actors fail, hang, answer late or see QEMU exit, and Ctrl-C may come after any call;
 * fc.scheduler orders every answer and every await, and the clock jumps to the next bound at a few
 * generated points. On every schedule:
 *   (a) at most one capture of the config at a time: never two runs holding the capture lock,
 *       never two captures being written under it, nothing published but a whole version by the
 *       lock's holder; once every run ended, no lock held and no capture folder left;
 *   (b) a run maps (and loads) only a finished version, never one being written;
 *   (c) a version is written only while it is being written: never after it is published, never
 *       once a run mapped it;
 *   (d) a resume maps the memory and loads the device state of the one version it pinned and checked;
 *   (e) a set-aside moves only the version the run found wanting;
 * and each run keeps the single-run invariants (test/helpers/invariants.ts): it ends `running` or
 * `failed`, with at most one QEMU of its instance at a time. Invariant 5 there (the store changes
 * only by a capture the machine saw complete) is left to (a): a storeSnapshot whose bound passed
 * after its commit has published a whole snapshot, which the run then does not use.
 * A failure prints fast-check's seed and path: replay it with
 *   WARMVM_PROPERTY_SEED=<seed> WARMVM_PROPERTY_PATH=<path> npx vitest run test/machines/clones.property.test.ts
 */

function broken(result: ClonesRun): string[] {
  const found = [...result.store.violations, ...result.store.leftovers()];
  if (result.stuck) found.push('the runs did not all end');
  for (const run of result.runs) for (const rule of brokenInvariants(run)) if (!rule.startsWith('5:')) found.push(`run ${run.id}: ${rule}`);
  return found;
}

async function raced(seed: number, spec: Parameters<typeof runClones>[0], jumps: number[], faults: StoreFaults = {}): Promise<ClonesRun> {
  // Built from a seed inside the property, so that a replay runs the same order (see seededScheduler).
  const scheduler = seededScheduler(seed);
  let step = 0;
  return await runClones(
    spec,
    {
      settle: (label, value) => scheduler.schedule(Promise.resolve(label)).then(value),
      pending: () => scheduler.count(),
      settleOne: () => scheduler.waitOne(),
      // Mostly the scheduler's order; at a few generated steps the clock jumps to the next bound instead.
      preferSettle: () => !jumps.includes(step++),
    },
    faults,
  );
}

/** Runs `spec` on a schedule pinned down by `holds`; fails the test if a hold had to be broken (the schedule was not the one meant). */
async function held(spec: Parameters<typeof runClones>[0], holds: Hold[], faults: StoreFaults = {}): Promise<ClonesRun> {
  const race = orderedRace(holds);
  const result = await runClones(spec, race, faults);
  expect(race.forced).toEqual([]);
  for (const hold of holds) expect(race.settled).toContainEqual(expect.stringMatching(hold.until));
  return result;
}

/** The scheduler steps at which the clock jumps to the next bound although answers are pending. */
const jumpsArb = fc.uniqueArray(fc.integer({ min: 0, max: 400 }), { maxLength: 3 });

/** One clone for the scenarios below: nothing fails unless `over` says so. */
function clone(behaviours: Script['behaviours'] = {}, over: Partial<Script> & { capture?: boolean } = {}): CloneSpec {
  const { capture = true, ...script } = over;
  return {
    script: { behaviours, snapshot: 'missing', incomingRunstate: 'paused', cancelAtCall: undefined, ...script },
    flags: { forceCold: false, capture, rotation: true },
  };
}

const late = (ms: number): Behaviour => ({ kind: 'late', ms });
const fail = (code: string): Behaviour => ({ kind: 'fail', code });
const ok: Behaviour = { kind: 'ok' };
const states = (result: ClonesRun) => result.store.versions.map((version) => [version.writer, version.state]);

describe('clones of one config share one snapshot store', () => {
  it('(a)-(e) on every schedule', async () => {
    await fc.assert(
      fc.asyncProperty(schedulerSeedArb, clonesArb, jumpsArb, async (seed, spec, jumps) => {
        const result = await raced(seed, spec, jumps);
        const found = broken(result);
        if (found.length > 0) throw new Error(`${found.join('\n')}\n${describeClones(result)}`);
      }),
      propertyParams(100),
    );
  }, 600_000);

  it('two first starts: one captures, the other waits for it and resumes what it captured', async () => {
    const result = await runClones({ initial: undefined, runs: [clone({ 'capture.migrate': [late(500)] }), clone({ preflight: [late(100)] })] });
    expect(broken(result)).toEqual([]);
    const [first, second] = result.runs;
    expect(first?.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
    expect(second?.output).toMatchObject({ outcome: 'healthy', path: 'resume' });
    expect(startStates(second?.trace ?? [])).toContain('start.awaitingCapture');
    expect(result.store.versions.map((version) => version.state)).toEqual(['published']);
    expect([...(result.store.versions[0]?.mappedBy.keys() ?? [])].sort()).toEqual([1, 2]);
  });

  it('a waiter whose capturer failed takes the lock as the capture is dropped, not once the capturer’s kept VM is healthy', async () => {
    const result = await runClones({
      initial: undefined,
      runs: [clone({ 'capture.pause': [late(300)], 'capture.migrate': [fail('E_IO')], 'capture.health': [late(500)] }), clone({ preflight: [late(100)] })],
    });
    expect(broken(result)).toEqual([]);
    const [first, second] = result.runs;
    // The capture failed with the VM paused: continueVm let go of the lock first, and the run ended healthy on that VM.
    expect(first?.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture', rotated: true, warnings: [expect.stringContaining('capture.migrating')] });
    expect(second?.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
    expect(startStates(second?.trace ?? []).slice(4, 7)).toEqual(['start.choosing', 'start.awaitingCapture', 'start.coldBoot']);
    // The waiter captured and resumed while the failed capturer's kept VM still waited for its guest's health.
    expect(second?.elapsedMs).toBeLessThan(800);
    expect(first?.elapsedMs).toBeGreaterThanOrEqual(800);
    expect(states(result)).toEqual([
      [1, 'dropped'],
      [2, 'published'],
    ]);
  });

  it('a capture that fails after QEMU quit (storing) falls back to a cold boot: no VM is left to keep', async () => {
    const result = await runClones({ initial: undefined, runs: [clone({ 'capture.store': [fail('E_IO')] })] });
    expect(broken(result)).toEqual([]);
    expect(result.runs[0]?.output).toMatchObject({ outcome: 'healthy', path: 'cold', fallbackReason: expect.stringContaining('capture.storing') });
  });

  it('two resumes that fail after cont at once both count: the next start sets the snapshot aside', async () => {
    // Each appends one byte to the pinned folder's resume-failures once its QEMU stopped.
    const result = await runClones({
      initial: { failures: 0 },
      runs: [clone({ 'resume.health': [fail('E_HEALTH')] }), clone({ 'resume.health': [fail('E_HEALTH')] }), clone({ preflight: [late(100)] })],
    });
    expect(broken(result)).toEqual([]);
    expect(result.runs.map((run) => run.output?.outcome)).toEqual(['healthy', 'healthy', 'healthy']);
    expect(result.runs.map((run) => run.output?.path)).toEqual(['cold', 'cold', 'cold+capture+resume']);
    expect(result.runs[2]?.output).toMatchObject({ fallbackReason: 'its guest failed after 2 resumes in a row (rotation or health)' });
    expect(states(result)).toEqual([
      [-1, 'setAside'],
      [3, 'published'],
    ]);
  });

  it('a resume that fails after cont a second time in a row sets its snapshot aside and captures anew', async () => {
    const result = await runClones({ initial: { failures: 1 }, runs: [clone({ 'resume.health': [fail('E_HEALTH')] }), clone({ preflight: [late(100)] })] });
    expect(broken(result)).toEqual([]);
    expect(result.runs[0]?.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', fallbackReason: expect.stringContaining('resume.probing') });
    expect(result.runs[1]?.output).toMatchObject({ outcome: 'healthy', path: 'resume' });
    expect(states(result)).toEqual([
      [-1, 'setAside'],
      [1, 'published'],
    ]);
    expect(result.store.versions[0]?.failures).toBe(2);
    expect(result.store.versions[1]?.failures).toBe(0);
  });
});

/*
 * The six findings of this model on the steps before they were fixed, each on the schedule that
 * showed it: each now keeps the rule it broke.
 */
describe('the races the steps allowed before, fixed', () => {
  it('1. a start that captured, then found its fresh snapshot damaged, captures again only under the capture lock', async () => {
    // storeSnapshot let go of run.captureLock but kept it set: a second capture took the released lock for a held one.
    const result = await runClones({
      initial: undefined,
      runs: [clone({ 'capture.migrate': [ok, late(500)] }, { incomingRunstate: 'running' }), clone({ preflight: [late(100)] })],
    });
    expect(startStates(result.runs[0]?.trace ?? [])).toEqual(expect.arrayContaining(['start.settingAside']));
    expect(broken(result)).toEqual([]);
    expect(result.store.violations).toEqual([]);
    expect(result.store.log).toContain('run 1 takes the capture lock');
    expect(result.store.log.filter((line) => line === 'run 1 takes the capture lock')).toHaveLength(2);
  });

  it('2. resumes still running do not count as failed ones: a third clone resumes the healthy snapshot', async () => {
    // Counted at cont (and cleared only by a hand-off), two clones still probing made a third set it aside.
    const result = await runClones({
      initial: { failures: 0 },
      runs: [clone({ 'resume.health': [late(500)] }), clone({ preflight: [late(10)], 'resume.health': [late(500)] }), clone({ preflight: [late(100)] })],
    });
    expect(broken(result)).toEqual([]);
    expect(result.store.observations).toEqual([]);
    expect(result.runs.map((run) => run.output)).toMatchObject([
      { outcome: 'healthy', path: 'resume' },
      { outcome: 'healthy', path: 'resume' },
      { outcome: 'healthy', path: 'resume', fallbackReason: undefined },
    ]);
    expect(states(result)).toEqual([[-1, 'published']]);
  });

  it('3. a resume loads the device state of the snapshot it mapped, though another is published in between', async () => {
    // The memory file is mapped at launch and state.raw opened at migrate-incoming; run 1 sets the
    // snapshot aside and publishes another in between. Through the pin, run 2 reads the one it mapped.
    const spec = {
      initial: { failures: 0 },
      runs: [clone({ preflight: [late(10)], 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')] }), clone({ 'resume.launch': [late(500)] })],
    };
    const result = await runClones(spec);
    expect(broken(result)).toEqual([]);
    expect(result.runs[1]?.output).toMatchObject({ outcome: 'healthy', path: 'resume' });
    expect(states(result)).toEqual([
      [-1, 'setAside'],
      [1, 'published'],
    ]);
    const side = result.runs[1]?.side;
    expect([side?.pinned?.id, side?.mapped?.id, side?.manifestOf?.id]).toEqual([0, 0, 0]);
  });

  it('4. a resume that failed on a snapshot replaced meanwhile sets nothing aside: the new one stays', async () => {
    // Run 1 maps version 0; run 2 sets it aside and publishes version 1; then run 1's incoming migration fails.
    const spec = {
      initial: { failures: 0 },
      runs: [
        clone({ 'resume.launch': [late(500)], 'resume.incoming': [fail('E_MIGRATION_INCOMING')] }),
        clone({ preflight: [late(10)], 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')] }),
      ],
    };
    const result = await runClones(spec);
    expect(broken(result)).toEqual([]);
    // It found version 1 in place of what it resumed: no set-aside, no capture (the lock let go).
    expect(result.runs[0]?.output).toMatchObject({ outcome: 'healthy', path: 'cold', fallbackReason: expect.stringContaining('resume.incoming') });
    expect(result.runs[1]?.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
    expect(states(result)).toEqual([
      [-1, 'setAside'],
      [2, 'published'],
    ]);
  });

  it('4. a resume that starts after another replaced the snapshot resumes the new one', async () => {
    const result = await runClones({
      initial: { failures: 0 },
      runs: [clone({ 'resume.prepare': [late(100)] }), clone({ 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')] })],
    });
    expect(broken(result)).toEqual([]);
    expect(result.runs[0]?.output).toMatchObject({ outcome: 'healthy', path: 'resume' });
    expect(result.runs[0]?.side.mapped?.id).toBe(1);
    expect(states(result)).toEqual([
      [-1, 'setAside'],
      [2, 'published'],
    ]);
  });

  it('5. a set-aside that passes its bound leaves the capture to others: its cold boot runs healthy, capturing nothing', async () => {
    // The cold boot after it used to capture without the lock; pauseVm then found run 2 capturing, and the fallback was spent.
    const result = await runClones({
      initial: { failures: 0 },
      runs: [
        clone({ 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')], setAside: [{ kind: 'hang' }] }),
        clone({ preflight: [late(500)], 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')], 'capture.migrate': [late(900)] }),
      ],
    });
    expect(broken(result)).toEqual([]);
    expect(result.runs[0]?.output).toMatchObject({ outcome: 'healthy', path: 'cold' });
    expect(result.runs[0]?.world.calls).not.toContain('capture.pause');
    expect(result.runs[1]?.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
  });

  it('6. a waiter outlasts a capturer that takes nearly every bound of its cold boot and capture', async () => {
    expect(CLONE_BOUNDS.captureWaitMs).toBe(9 * BOUND_MS);
    const slow = late(BOUND_MS - 50);
    const steps = ['cold.prepare', 'cold.launch', 'cold.guest', 'cold.rotate', 'cold.health', 'capture.pause', 'capture.migrate', 'capture.quit', 'capture.store'] as const;
    const result = await runClones({ initial: undefined, runs: [clone(Object.fromEntries(steps.map((step) => [step, [slow]]))), clone({ preflight: [late(1)] })] });
    expect(broken(result)).toEqual([]);
    expect(result.runs[0]?.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
    expect(result.runs[1]?.output).toMatchObject({ outcome: 'healthy', path: 'resume' });
    expect(startStates(result.runs[1]?.trace ?? [])).toContain('start.awaitingCapture');
    expect(result.runs[1]?.elapsedMs).toBeGreaterThan(7 * BOUND_MS);
  });
});

describe('each check fails on a store or steps broken on purpose', () => {
  it('(a): with a capture lock that never refuses, two first starts capture at once', async () => {
    const spec = { initial: undefined, runs: [clone({ 'capture.migrate': [late(500)] }), clone({ preflight: [late(100)] })] };
    expect(broken(await runClones(spec))).toEqual([]);
    const found = broken(await runClones(spec, undefined, { skipLock: true }));
    expect(found).toContain('(a) runs 1 and 2 hold the capture lock at once');
    expect(found).toContainEqual(expect.stringMatching(/^\(a\) run 2 starts a capture while version 0 \(run 1\) is being written/));
  });

  it('(b): with QEMU mapping the newest folder, a resume maps a capture still being written', async () => {
    // Run 2 pins version 0; before its QEMU maps it, run 1 sets it aside and starts capturing version 1.
    const spec = {
      initial: { failures: 0 },
      runs: [clone({ preflight: [late(10)], 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')], 'capture.migrate': [late(500)] }), clone()],
    };
    const holds = [{ label: /^run 2 QEMU maps the memory file$/, until: /^run 1 creates its capture folder$/ }];
    const fixed = await held(spec, holds);
    expect(broken(fixed)).toEqual([]);
    // Version 0 set aside is still whole through the pin; its disk, by path, is not there: QEMU exits and run 2 boots cold.
    expect(fixed.runs[1]?.side.mapped?.id).toBe(0);
    expect(fixed.runs[1]?.output).toMatchObject({ outcome: 'healthy', path: 'cold', fallbackReason: expect.stringContaining('resume.launching') });
    expect(broken(await held(spec, holds, { mapNewest: true }))).toContainEqual(expect.stringMatching(/^\(b\) run 2 maps the memory of version 1, which is being written/));
  });

  it('(c): with the memory file mapped shared, a clone’s guest writes into the published snapshot', async () => {
    const spec = { initial: { failures: 0 }, runs: [clone(), clone()] };
    expect(broken(await runClones(spec))).toEqual([]);
    expect(broken(await runClones(spec, undefined, { sharedMapping: true }))).toContainEqual(expect.stringMatching(/^\(c\) run 1 writes memory of version 0, which is published/));
  });

  it('(d): with state.raw read by path, not through the pin, a resume loads the device state of another snapshot', async () => {
    const spec = {
      initial: { failures: 0 },
      runs: [clone({ preflight: [late(10)], 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')] }), clone({ 'resume.launch': [late(500)] })],
    };
    expect(broken(await runClones(spec))).toEqual([]);
    expect(broken(await runClones(spec, undefined, { unpinnedState: true }))).toContain(
      '(d) run 2 loads the device state of version 1 into the memory of version 0, having checked version 0',
    );
  });

  it('(e): with a set-aside that does not check what it moves, a resume sets aside the snapshot another just published', async () => {
    const spec = {
      initial: { failures: 0 },
      runs: [
        clone({ 'resume.launch': [late(500)], 'resume.incoming': [fail('E_MIGRATION_INCOMING')] }),
        clone({ preflight: [late(10)], 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')] }),
      ],
    };
    expect(broken(await runClones(spec))).toEqual([]);
    expect(broken(await runClones(spec, undefined, { uncheckedSetAside: true }))).toContain('(e) run 1 sets version 1 aside for what it found in version 0');
  });
});

/*
 * Races the steps still allow, found by the model and left (see the notes on issue 13): each is
 * pinned down on one schedule; when the steps close one, turn its test around. (A store cut short
 * by its bound that committed after recovering let go of the lock was one: recovering now waits
 * for it, and the property above would find it again.)
 */
describe('races the fixed steps still allow, reproduced on the model', () => {
  it('(g): a resume’s QEMU opens the disk of a snapshot published after the one whose memory it mapped', async () => {
    // The overlay made at prepareState names snapshots/<key>/disk.qcow2, not the pin: QEMU opens it
    // at launch, after run 1 set the pinned snapshot aside and published another.
    const result = await held(
      {
        initial: { failures: 0 },
        runs: [clone({ preflight: [late(10)], 'resume.prepare': [fail('E_SNAPSHOT_CORRUPT')] }), clone()],
      },
      [{ label: /^run 2 QEMU opens the disk overlay$/, until: /^run 1 commits the capture$/ }],
    );
    expect(broken(result)).toEqual([]);
    expect(result.store.observations).toEqual(["(g) run 2's QEMU opens the disk of version 1 (its overlay's backing file, by path) under the memory of version 0"]);
    expect(result.runs[1]?.output).toMatchObject({ outcome: 'healthy', path: 'resume' });
    expect([result.runs[1]?.side.mapped?.id, result.runs[1]?.side.backing?.id]).toEqual([0, 1]);
  });

  it('(f): a snapshot is set aside for two failed resumes in a row though a healthy clone cleared the count between them', async () => {
    // Run 1 read one failure at choosing; run 2 resumed healthy and cleared it; run 1's guest then fails.
    const result = await runClones({
      initial: { failures: 1 },
      runs: [clone({ 'resume.rotate': [late(500)], 'resume.health': [fail('E_HEALTH')] }), clone()],
    });
    expect(broken(result)).toEqual([]);
    expect(result.store.observations).toEqual(['(f) run 1 sets version 0 aside for its guest failing after cont, with 1 failed resume(s) in its file']);
    expect(result.runs[0]?.output).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
  });
});
