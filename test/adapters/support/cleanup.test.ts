import { describe, expect, it } from 'vitest';
import { CleanupStack } from '../../../adapters/support/cleanup.js';

describe('CleanupStack', () => {
  it('runs steps once, in reverse, and goes on past a failing one', async () => {
    const ran: string[] = [];
    const stack = new CleanupStack();
    stack.add('a', () => void ran.push('a'));
    stack.add('b', () => {
      ran.push('b');
      throw new Error('b failed');
    });
    stack.add('c', async () => void ran.push('c'));
    await Promise.all([stack.runAll(), stack.runAll()]);
    await stack.runAll();
    expect(ran).toEqual(['c', 'b', 'a']);
  });

  it('skips a released step and does not repeat a step already run', async () => {
    const ran: string[] = [];
    const stack = new CleanupStack();
    const kept = stack.add('qemu', () => void ran.push('qemu'));
    const early = stack.add('socket', () => void ran.push('socket'));
    kept.release();
    await early.run();
    await stack.runAll();
    expect(ran).toEqual(['socket']);
    expect(stack.pending).toEqual([]);
  });
});

describe('CleanupStack, late steps', () => {
  it('runs a step added while it runs, and one added after it ran', async () => {
    const ran: string[] = [];
    const stack = new CleanupStack();
    stack.add('first', () => {
      ran.push('first');
      stack.add('added while running', () => void ran.push('added while running'));
    });
    await stack.runAll();
    expect(ran).toEqual(['first', 'added while running']);
    stack.add('added after', () => void ran.push('added after'));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(ran.at(-1)).toBe('added after');
  });
});
