import fc from 'fast-check';
import { createActor, SimulatedClock } from 'xstate';
import type { TraceEntry } from '../../adapters/trace/record.js';
import { TraceRecorder } from '../../adapters/trace/recorder.js';
import { defaultSpec } from '../../adapters/spec/vm.js';
import { startBounds } from '../../bin/commands/start.js';
import type { StartBounds, StartInput, StartOutput } from '../../machines/start.js';
import { SnapshotStoreModel, StoreSide, type StoreFaults } from './fake-store.js';
import { BOUND_MS, uniformBounds, World, type Script } from './fake-world.js';
import { behavioursArb, cancelAtCallArb, flush, incomingRunstateArb, nextTimer, type WorldRun } from './world-run.js';

/** One start of the config: its own instance (a World of its own), its faults, its flags. */
export interface CloneSpec {
  script: Script;
  flags: { forceCold: boolean; capture: boolean; rotation: boolean };
}

export interface ClonesSpec {
  /** The store before the runs: empty, or one published snapshot with its resume failures so far. */
  initial: { failures: number } | undefined;
  runs: CloneSpec[];
}

export interface CloneRun extends WorldRun {
  id: number;
  side: StoreSide;
}

export interface ClonesRun {
  store: SnapshotStoreModel;
  runs: CloneRun[];
  /** Nothing left to move it, yet a run had not ended or a step's work had not settled. */
  stuck: boolean;
}

/** How the shared loop picks what happens next: fc.scheduler's tasks, or the clock. */
export interface ClonesRace {
  /** Every await of every run's steps, and every actor's answer, goes through here. */
  settle: <T>(label: string, value: () => T) => Promise<T>;
  pending: () => number;
  settleOne: () => Promise<void>;
  preferSettle: () => boolean;
}

/**
 * Every bound 1 s, but the wait for another start's capture as bin/commands/start.ts derives it
 * from the spec's bounds (all 1 s here): 2 × launch + boot + rotate + health + 2 × stop + 2 × capture.
 */
const SPEC_BOUNDS = { launchMs: BOUND_MS, bootMs: BOUND_MS, healthMs: BOUND_MS, stopMs: BOUND_MS, incomingMs: BOUND_MS, rotateMs: BOUND_MS, captureMs: BOUND_MS };
export const CLONE_BOUNDS: StartBounds = { ...uniformBounds(), captureWaitMs: startBounds({ ...defaultSpec(), bounds: SPEC_BOUNDS }).captureWaitMs };

/** Settles each await at once, in the order the promises resolve: time moves only when nothing else can. */
export const NO_RACE: ClonesRace = { settle: async (_label, value) => value(), pending: () => 0, settleOne: async () => undefined, preferSettle: () => false };

/** Holds back every await whose label matches `label` until one whose label matches `until` has settled. */
export interface Hold {
  label: RegExp;
  until: RegExp;
}

/**
 * Settles the awaits one at a time, oldest first, but those a hold keeps back; when only held
 * ones are left, time moves to the next timer instead. For schedules pinned down by hand: `forced`
 * names the holds that had to be broken because nothing else could move (the schedule was not the one meant).
 */
export function orderedRace(holds: Hold[]): ClonesRace & { settled: string[]; forced: string[] } {
  const queue: { label: string; go: () => void }[] = [];
  const settled: string[] = [];
  const forced: string[] = [];
  const active = new Set(holds);
  const pickable = (): number => queue.findIndex((task) => ![...active].some((hold) => hold.label.test(task.label)));
  const settleAt = (index: number): void => {
    const [task] = queue.splice(index, 1);
    if (!task) return;
    settled.push(task.label);
    for (const hold of active) if (hold.until.test(task.label)) active.delete(hold);
    task.go();
  };
  return {
    settled,
    forced,
    settle: <T>(label: string, value: () => T) =>
      new Promise<T>((resolve, reject) => {
        queue.push({
          label,
          go: () => {
            try {
              resolve(value());
            } catch (error) {
              reject(error);
            }
          },
        });
      }),
    pending: () => queue.length,
    preferSettle: () => pickable() >= 0,
    settleOne: async () => {
      const index = pickable();
      if (index < 0 && queue[0]) forced.push(queue[0].label);
      settleAt(Math.max(index, 0));
    },
  };
}

/**
 * Runs several start machines at once, each on its own World (its own instance and QEMUs) and
 * all on one SnapshotStoreModel and one simulated clock. Time jumps to the next timer only when
 * the race says so or nothing else can happen. A run that ends is handed off (a healthy resume
 * clears the snapshot's failure count) and its cleanup stack runs, as bin/commands/start.ts does;
 * the loop ends once every run ended and every step's leftover work has settled.
 */
export async function runClones(spec: ClonesSpec, race: ClonesRace = NO_RACE, faults: StoreFaults = {}): Promise<ClonesRun> {
  const clock = new SimulatedClock();
  const store = new SnapshotStoreModel(faults, spec.initial);
  const tick = (label: string): Promise<void> => race.settle(label, () => undefined);
  let background = 0;
  const inBackground = (work: Promise<void>): void => {
    background += 1;
    void work.finally(() => {
      background -= 1;
    });
  };
  const runs = spec.runs.map((clone, index) => {
    const id = index + 1;
    let side: StoreSide | undefined;
    const world = new World(clone.script, clock, race.settle, {
      pidBase: 1000 * id,
      snapshots: () => (side = new StoreSide(store, id, tick)),
    });
    const trace = new TraceRecorder(undefined);
    const input: StartInput = { bounds: CLONE_BOUNDS, ...clone.flags };
    const actor = createActor(world.machine(), { input, clock, inspect: trace.inspect });
    world.onCancelPoint = () => {
      world.cancel();
      actor.send({ type: 'CANCEL' });
    };
    if (!side) throw new Error('the world made no snapshot side');
    return { id, world, side, input, actor, trace, endedAt: undefined as number | undefined };
  });
  for (const run of runs) run.actor.start();
  let stuck = false;
  let idle = 0;
  for (let step = 0; step < 50_000; step += 1) {
    await flush();
    for (const run of runs) {
      if (run.endedAt !== undefined || run.actor.getSnapshot().status === 'active') continue;
      run.endedAt = clock.now();
      const output = run.actor.getSnapshot().output;
      const side = run.side;
      inBackground(
        (async () => {
          if (output?.outcome === 'healthy' && output.path.endsWith('resume')) await side.handOff();
          await side.cleanup();
        })(),
      );
    }
    const allEnded = runs.every((run) => run.endedAt !== undefined);
    if (allEnded && race.pending() === 0 && background === 0) break;
    const due = nextTimer(clock);
    if (race.pending() > 0 && (due === undefined || race.preferSettle())) {
      await race.settleOne();
      continue;
    }
    if (due === undefined) {
      // Work that settles without the scheduler (NO_RACE) needs another flush or two.
      if (background > 0 && (idle += 1) < 8) continue;
      stuck = !(allEnded && background === 0);
      break;
    }
    idle = 0;
    clock.set(due);
  }
  const result: CloneRun[] = runs.map((run) => {
    const output: StartOutput | undefined = run.actor.getSnapshot().output;
    const active = run.actor.getSnapshot().status === 'active';
    run.actor.stop();
    return {
      id: run.id,
      side: run.side,
      world: run.world,
      input: run.input,
      output,
      trace: run.trace.entries,
      elapsedMs: run.endedAt ?? clock.now(),
      stuck: active,
    };
  });
  return { store, runs: result, stuck };
}

/** The root machine's states of one run, in order. */
export function startStates(trace: TraceEntry[]): string[] {
  return trace.filter((entry) => entry.machine === 'start').map((entry) => entry.state);
}

/** A failing schedule, in words: each run's path and output, and what the store saw. */
export function describeClones(result: ClonesRun): string {
  return [
    ...result.runs.map((run) =>
      [
        `run ${run.id} ${JSON.stringify(run.input, (key, value: unknown) => (key === 'bounds' ? undefined : value))}`,
        `  calls ${run.world.calls.join(' ')}`,
        `  states ${startStates(run.trace).join(' → ')}`,
        `  output ${JSON.stringify(run.output)}`,
      ].join('\n'),
    ),
    `store ${result.store.log.join('; ')}`,
    ...(result.store.observations.length > 0 ? [`observed ${result.store.observations.join('; ')}`] : []),
  ].join('\n');
}

/** One clone's faults: as the single-run property's, with the snapshot left to the shared store. */
const cloneArb: fc.Arbitrary<CloneSpec> = fc.record({
  script: fc.record({
    // Fewer faults per run than the single-run property: runs that fail early race with nothing.
    behaviours: fc.oneof({ weight: 1, arbitrary: fc.constant({}) }, { weight: 2, arbitrary: behavioursArb }),
    snapshot: fc.constant('missing' as const),
    incomingRunstate: fc.oneof({ weight: 3, arbitrary: fc.constant('paused') }, { weight: 1, arbitrary: incomingRunstateArb }),
    cancelAtCall: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: cancelAtCallArb }),
  }),
  flags: fc.record({
    forceCold: fc.constantFrom(false, false, false, false, true),
    capture: fc.constantFrom(true, true, true, false),
    rotation: fc.constantFrom(true, true, false),
  }),
});

/** 2 to 4 starts of one config, on an empty store or one holding a snapshot that failed 0, 1 or 2 resumes in a row. */
export const clonesArb: fc.Arbitrary<ClonesSpec> = fc.record({
  initial: fc.option(fc.record({ failures: fc.constantFrom(0, 0, 1, 2) }), { nil: undefined }),
  runs: fc.array(cloneArb, { minLength: 2, maxLength: 4 }),
});
