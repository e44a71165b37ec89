import { vi } from 'vitest';

/**
 * Runs `body` with vi's fake setTimeout and clearTimeout, and only those: socket I/O and
 * setImmediate stay real, so a race test moves time by hand while real bytes flow. Real timers
 * are back afterwards, however `body` ends.
 */
export async function withFakeTimeouts<T>(body: () => Promise<T>): Promise<T> {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  try {
    return await body();
  } finally {
    vi.useRealTimers();
  }
}
