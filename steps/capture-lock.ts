import { tryLock, type InstanceLock } from '../adapters/instance/lock.js';
import { need, type Run } from './run.js';

/**
 * The config's capture lock for this run, or the pid of the live start that holds it. Held until
 * the capture is published or given up, and released by the run's cleanup on every other path.
 */
export async function takeCaptureLock(run: Run): Promise<{ taken: true } | { holder: number }> {
  if (run.captureLock) return { taken: true };
  const taken = await tryLock(need(run.snapshot, 'the snapshot').captureLock);
  if ('holder' in taken) return taken;
  holdCaptureLock(run, taken.lock);
  return { taken: true };
}

/** A lock this run took itself (tryLock) becomes the run's, released by its cleanup if not before. */
export function holdCaptureLock(run: Run, lock: InstanceLock): void {
  run.captureLock = lock;
  run.cleanup.add('release the capture lock', () => lock.release());
}

/** Done with the lock: published, given up, or nothing to capture (a capture after a later fallback takes it anew). */
export async function releaseCaptureLock(run: Run): Promise<void> {
  const lock = run.captureLock;
  run.captureLock = undefined;
  await lock?.release();
}
