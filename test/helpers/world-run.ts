import fc from 'fast-check';
import { createActor, SimulatedClock } from 'xstate';
import type { TraceEntry } from '../../adapters/trace/record.js';
import { TraceRecorder } from '../../adapters/trace/recorder.js';
import type { StartInput, StartOutput } from '../../machines/start.js';
import { ACTOR_NAMES, BOUND_MS, DAMAGE_CODES, OTHER_CODES, uniformBounds, World, type Behaviour, type Script, type Settle } from './fake-world.js';

export interface WorldRun {
  world: World;
  input: StartInput;
  output: StartOutput | undefined;
  trace: TraceEntry[];
  /** Simulated milliseconds from start to the end (or to where it got stuck). */
  elapsedMs: number;
  /** Still active with nothing left that could move it: a deadlock. */
  stuck: boolean;
}

/**
 * Runs the root machine on a world of fakes under XState's simulated clock: whenever nothing
 * else can happen, time jumps to the next timer, so every bound elapses at once. `choose`, when
 * given, decides at each step between letting a settled actor through (via `settle`) and moving
 * the clock: the race tests hand both to fc.scheduler.
 */
export async function runWorld(
  script: Script,
  flags: { forceCold: boolean; capture: boolean; rotation: boolean; pull?: boolean },
  race?: { settle: Settle; pending: () => number; settleOne: () => Promise<void>; preferSettle: () => boolean },
): Promise<WorldRun> {
  const clock = new SimulatedClock();
  const world = new World(script, clock, race?.settle);
  const trace = new TraceRecorder(undefined);
  const input: StartInput = { bounds: uniformBounds(), ...flags };
  const actor = createActor(world.machine(), { input, clock, inspect: trace.inspect });
  world.onCancelPoint = () => {
    world.cancel();
    actor.send({ type: 'CANCEL' });
  };
  actor.start();
  let stuck = false;
  for (let step = 0; step < 10_000; step += 1) {
    await flush();
    if (actor.getSnapshot().status !== 'active') break;
    const due = nextTimer(clock);
    const canSettle = (race?.pending() ?? 0) > 0;
    if (canSettle && (due === undefined || race?.preferSettle())) {
      await race?.settleOne();
      continue;
    }
    if (due === undefined) {
      stuck = true;
      break;
    }
    clock.set(due);
  }
  const output = actor.getSnapshot().output;
  actor.stop();
  return { world, input, output, trace: trace.entries, elapsedMs: clock.now(), stuck };
}

/** Lets every promise that can settle now settle, and XState process what follows. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 3; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** When the simulated clock's next timer fires, if any. */
export function nextTimer(clock: SimulatedClock): number | undefined {
  let next: number | undefined;
  // The simulated clock keeps its timers in a public map: { start, timeout }.
  for (const { start, timeout } of (clock as unknown as { timeouts: Map<number, { start: number; timeout: number }> }).timeouts.values()) {
    const at = start + timeout;
    if (next === undefined || at < next) next = at;
  }
  return next;
}

/** A generous ceiling: every bound of every machine, each run at most three times (the one fallback, and one more cold boot after a crash). */
export const RUN_CEILING_MS = 3 * Object.values(uniformBounds()).reduce((sum, ms) => sum + ms, 0);

/** What one call of a fake actor does, weighted towards success. */
export const behaviourArb: fc.Arbitrary<Behaviour> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ kind: 'ok' } as const) },
  { weight: 3, arbitrary: fc.constantFrom(...DAMAGE_CODES, ...OTHER_CODES).map((code) => ({ kind: 'fail', code }) as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'hang' } as const) },
  // Around the bound on purpose: an answer that lands as the bound expires.
  { weight: 2, arbitrary: fc.constantFrom(1, BOUND_MS - 1, BOUND_MS, BOUND_MS + 1, 3 * BOUND_MS).map((ms) => ({ kind: 'late', ms }) as const) },
  // Killed from outside, or a crash of QEMU's own (SIGABRT): only the crash boots cold once more.
  { weight: 1, arbitrary: fc.boolean().map((crash) => ({ kind: 'qemuExits', crash }) as const) },
);

/** Faults of one run's actors: what each call does, how the incoming migration settles, when Ctrl-C comes. */
export const behavioursArb: fc.Arbitrary<Script['behaviours']> = fc.dictionary(fc.constantFrom(...ACTOR_NAMES), fc.array(behaviourArb, { maxLength: 3 }), { maxKeys: 6 });
export const incomingRunstateArb: fc.Arbitrary<string> = fc.constantFrom('paused', 'paused', 'paused', 'running', 'inmigrate', 'postmigrate');
export const cancelAtCallArb: fc.Arbitrary<number | undefined> = fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined, freq: 4 });

export const scriptArb: fc.Arbitrary<Script> = fc.record({
  behaviours: behavioursArb,
  snapshot: fc.constantFrom('usable', 'usable', 'missing', 'setAside', 'capturing'),
  failuresInARow: fc.constantFrom(0, 0, 1),
  awaited: fc.constantFrom('usable', 'missing'),
  setAsideCapturing: fc.boolean(),
  pulled: fc.constantFrom('usable', 'failed'),
  suspended: fc.constantFrom('none', 'none', 'none', 'wakeable', 'wakeableUnrotated', 'setAside'),
  incomingRunstate: incomingRunstateArb,
  cancelAtCall: cancelAtCallArb,
});

export const flagsArb = fc.record({ forceCold: fc.boolean(), capture: fc.boolean(), rotation: fc.boolean(), pull: fc.boolean() });
