import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { brokenInvariants, describeRun } from '../helpers/invariants.js';
import { propertyParams } from '../helpers/property-params.js';
import { schedulerSeedArb, seededScheduler } from '../helpers/seeded-scheduler.js';
import { behaviourArb, flagsArb, runWorld, scriptArb } from '../helpers/world-run.js';

/*
 * DESIGN.md's invariants, held on every generated run of the root machine (and through it the
 * cold-boot, capture and resume machines): each actor succeeds, fails with an error of any kind,
 * hangs until its bound, answers around its bound, or sees QEMU exit; Ctrl-C may come after any
 * call. A failure prints fast-check's seed and path: replay it with
 *   WARMVM_PROPERTY_SEED=<seed> WARMVM_PROPERTY_PATH=<path> npx vitest run test/machines/invariants.property.test.ts
 * and WARMVM_PROPERTY_RUNS=<n> runs more.
 */
describe('the machines keep DESIGN.md invariants on every generated run', () => {
  it('invariants 1-7 hold, checked on the trace and on the world the fakes act on', async () => {
    await fc.assert(
      fc.asyncProperty(scriptArb, flagsArb, async (script, flags) => {
        const run = await runWorld(script, flags);
        const broken = brokenInvariants(run);
        if (broken.length > 0) throw new Error(`${broken.join('\n')}\n${describeRun(run)}`);
      }),
      propertyParams(300),
    );
  }, 120_000);

  it('the same for a start that pulls: no usable snapshot here, the config names a registry, the pull meets any fault', async () => {
    const pulling = fc.record({
      script: scriptArb,
      snapshot: fc.constantFrom('missing', 'setAside'),
      pull: fc.array(behaviourArb, { minLength: 1, maxLength: 2 }),
      capture: fc.boolean(),
      rotation: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(pulling, async ({ script, snapshot, pull, capture, rotation }) => {
        const run = await runWorld({ ...script, snapshot, behaviours: { ...script.behaviours, pull } }, { forceCold: false, capture, rotation, pull: true });
        const broken = brokenInvariants(run);
        if (broken.length > 0) throw new Error(`${broken.join('\n')}\n${describeRun(run)}`);
      }),
      propertyParams(150),
    );
  }, 120_000);

  it('races: actor answers and bounds settle in every order fc.scheduler picks', async () => {
    await fc.assert(
      fc.asyncProperty(schedulerSeedArb, scriptArb, flagsArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 32 }), async (seed, script, flags, choices) => {
        // Built from a seed inside the property, so that a replay runs the same order (see seededScheduler).
        const scheduler = seededScheduler(seed);
        let step = 0;
        const run = await runWorld(script, flags, {
          settle: (label, value) => scheduler.schedule(Promise.resolve(label)).then(value),
          pending: () => scheduler.count(),
          settleOne: () => scheduler.waitOne(),
          preferSettle: () => choices[step++ % choices.length] === true,
        });
        const broken = brokenInvariants(run);
        if (broken.length > 0)
          throw new Error(
            `${broken.join('\n')}\n${describeRun(run)}\n${scheduler
              .report()
              .map((task) => task.label)
              .join(', ')}`,
          );
      }),
      propertyParams(150),
    );
  }, 120_000);

  it('a broken invariant is caught: the checks themselves can fail', async () => {
    // A world where QEMU never stops: every failed attempt leaves it running.
    const run = await runWorld(
      { behaviours: { 'resume.rotate': [{ kind: 'fail', code: 'E_ROTATE' }] }, snapshot: 'usable', incomingRunstate: 'paused', cancelAtCall: undefined },
      { forceCold: false, capture: true, rotation: true },
    );
    expect(brokenInvariants(run)).toEqual([]);
    run.world.live.add(424242);
    expect(brokenInvariants(run).join('\n')).toMatch(/^2: healthy with pid/m);
  });

  it('a snapshot set aside after one failure after cont is caught; after the second in a row it is not', async () => {
    const rotateFails = { 'resume.rotate': [{ kind: 'fail', code: 'E_ROTATE' } as const] };
    const flags = { forceCold: false, capture: true, rotation: true };
    const second = await runWorld({ behaviours: rotateFails, snapshot: 'usable', failuresInARow: 1, incomingRunstate: 'paused', cancelAtCall: undefined }, flags);
    expect(second.world.setAsides).toHaveLength(1);
    expect(brokenInvariants(second)).toEqual([]);
    // The same set-aside, had the snapshot not failed before: invariant 6 says so.
    const first = await runWorld({ behaviours: rotateFails, snapshot: 'usable', failuresInARow: 0, incomingRunstate: 'paused', cancelAtCall: undefined }, flags);
    expect(first.world.setAsides).toEqual([]);
    first.world.setAsides.push(...second.world.setAsides);
    expect(brokenInvariants(first).join('\n')).toMatch(/^6: a snapshot was set aside for "resume\.rotating: .*" \(0 failed resumes in a row before\)$/m);
  });
});
