import type { Parameters } from 'fast-check';

/**
 * fast-check parameters for a property: `defaultRuns` unless WARMVM_PROPERTY_RUNS says otherwise,
 * and the seed and path of a failure (fast-check prints both) from WARMVM_PROPERTY_SEED and
 * WARMVM_PROPERTY_PATH, so that failure can be replayed exactly.
 */
export function propertyParams<T>(defaultRuns: number): Parameters<T> {
  const { WARMVM_PROPERTY_RUNS: runs, WARMVM_PROPERTY_SEED: seed, WARMVM_PROPERTY_PATH: path } = process.env;
  const params: Parameters<T> = { numRuns: Number(runs ?? defaultRuns) };
  if (seed !== undefined && seed !== '') params.seed = Number(seed);
  if (path !== undefined && path !== '') params.path = path;
  return params;
}

/**
 * For fc.commands: its shrinking depends on which commands ran, so seed and path alone cannot
 * walk back to a shrunk failure. fast-check prints a `replayPath="…"` comment after the commands:
 * pass its value as WARMVM_PROPERTY_REPLAY_PATH, with the seed and path.
 */
export function commandsReplayPath(): string | undefined {
  const replayPath = process.env.WARMVM_PROPERTY_REPLAY_PATH;
  return replayPath === undefined || replayPath === '' ? undefined : replayPath;
}
