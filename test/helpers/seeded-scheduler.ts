import fc from 'fast-check';

/**
 * A fresh fc.scheduler() built from a seed that is part of the generated value.
 *
 * Why not take `fc.scheduler()` as an argument of the property: fast-check 4.10 clones one
 * scheduler for every shrink candidate, and the clones share one random source, so the order a
 * shrunk counterexample ran in is not the order a replay (seed + path) runs it in. Built from a
 * seed inside the property, every run, shrink and replay gets the same order for the same value.
 */
export function seededScheduler(seed: number): fc.Scheduler {
  const [scheduler] = fc.sample(fc.scheduler(), { seed, numRuns: 1 });
  if (!scheduler) throw new Error('fc.sample gave no scheduler');
  return scheduler;
}

/** The seed of a seededScheduler: shrinking it would only swap one random order for another. */
export const schedulerSeedArb: fc.Arbitrary<number> = fc.noShrink(fc.integer());
