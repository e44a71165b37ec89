/**
 * Helpers for race tests: record how promises settle without awaiting them (a promise left
 * pending must show up as "pending", not hang the test), and poll for a condition on real I/O.
 * Both use setImmediate, never setTimeout, so they keep working under vi.useFakeTimers.
 */

export type Outcome = { kind: 'resolved'; value: unknown } | { kind: 'rejected'; error: unknown };

export class Outcomes<K> {
  private readonly settled = new Map<K, Outcome>();

  track(key: K, promise: Promise<unknown>): void {
    const record = (outcome: Outcome): void => {
      this.settled.set(key, outcome);
    };
    promise.then(
      (value) => record({ kind: 'resolved', value }),
      (error: unknown) => record({ kind: 'rejected', error }),
    );
  }

  get(key: K): Outcome | undefined {
    return this.settled.get(key);
  }

  has(key: K): boolean {
    return this.settled.has(key);
  }
}

/** Lets pending I/O callbacks and microtasks run once. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits on real I/O until `condition` holds; throws naming `what` after `timeoutMs` of wall time. */
export async function until(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await nextTurn();
  }
}
