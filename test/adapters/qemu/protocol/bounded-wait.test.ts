import { describe, expect, it } from 'vitest';
import { boundedWait, type Waiter } from '../../../../adapters/qemu/protocol/bounded-wait.js';
import { WarmvmError } from '../../../../adapters/support/errors.js';

describe('boundedWait', () => {
  const base = (waiters: Set<Waiter>) => ({
    operation: 'op',
    signal: undefined,
    waiters,
    timeoutError: () => new Error('timed out'),
  });

  it('resolves with what start settles and runs its undo once', async () => {
    const waiters = new Set<Waiter>();
    let undone = 0;
    const value = await boundedWait<number>({ ...base(waiters), timeoutMs: 1000 }, (settle) => {
      setTimeout(() => settle.resolve(5), 5);
      return () => {
        undone += 1;
      };
    });
    expect(value).toBe(5);
    expect(undone).toBe(1);
    expect(waiters.size).toBe(0);
  });

  it('rejects on timeout and calls onGiveUp', async () => {
    const waiters = new Set<Waiter>();
    let gaveUp = false;
    let undone = 0;
    const started = Date.now();
    await expect(
      boundedWait({ ...base(waiters), timeoutMs: 30, onGiveUp: () => (gaveUp = true) }, () => () => {
        undone += 1;
      }),
    ).rejects.toThrow('timed out');
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(gaveUp).toBe(true);
    expect(undone).toBe(1);
    expect(waiters.size).toBe(0);
  });

  it('rejects with E_ABORTED when the signal fires', async () => {
    const controller = new AbortController();
    const promise = boundedWait({ ...base(new Set()), timeoutMs: 10_000, signal: controller.signal }, () => () => {});
    controller.abort(new Error('user pressed ^C'));
    const error = await promise.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WarmvmError);
    expect((error as WarmvmError).code).toBe('E_ABORTED');
    expect((error as WarmvmError).message).toBe('op was cancelled');
  });

  it('is failed through its waiter (a disconnect)', async () => {
    const waiters = new Set<Waiter>();
    const promise = boundedWait({ ...base(waiters), timeoutMs: 10_000 }, () => () => {});
    expect([...waiters].map((waiter) => waiter.operation)).toEqual(['op']);
    for (const waiter of waiters) waiter.fail(new Error('gone'));
    await expect(promise).rejects.toThrow('gone');
    expect(waiters.size).toBe(0);
  });

  it('does not arm a timer for an unbounded wait', async () => {
    const promise = boundedWait<string>({ ...base(new Set()), timeoutMs: Number.POSITIVE_INFINITY }, (settle) => {
      setTimeout(() => settle.resolve('late'), 20);
      return () => {};
    });
    await expect(promise).resolves.toBe('late');
  });
});
