import { appendFile, mkdir, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { followFile } from '../../../adapters/support/file-follow.js';
import { useTempDirs } from '../../helpers/temp.js';

const tempDir = useTempDirs('wvm-follow-');

/** Follows `file` in the background; `until(text)` resolves once the output holds it. */
function follow(file: string): { events: string[]; output: () => string; until: (text: string) => Promise<void>; stop: () => Promise<void> } {
  const controller = new AbortController();
  const events: string[] = [];
  let output = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  const check = (): void => {
    for (const waiter of waiters.filter((w) => output.includes(w.text))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  const done = followFile(file, {
    signal: controller.signal,
    pollMs: 50,
    onData: (chunk) => {
      output += chunk.toString('utf8');
      check();
    },
    onRestart: (how) => {
      events.push(how);
      output += `<${how}>`;
      check();
    },
  });
  return {
    events,
    output: () => output,
    until: (text) => (output.includes(text) ? Promise.resolve() : new Promise((resolve) => waiters.push({ text, resolve }))),
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

describe('followFile', () => {
  it('prints what is there, then what is appended, until its signal fires', async () => {
    const file = join(await tempDir(), 'serial.log');
    await writeFile(file, 'boot\n');
    const tail = follow(file);
    await tail.until('boot\n');
    await appendFile(file, 'more\n');
    await tail.until('more\n');
    await tail.stop();
    expect(tail.output()).toBe('boot\nmore\n');
    expect(tail.events).toEqual([]);
  });

  it('reads a file written anew in place from its start, even when it grew past where it was', async () => {
    const file = join(await tempDir(), 'serial.log');
    await writeFile(file, 'first run\n');
    const tail = follow(file);
    await tail.until('first run\n');
    // What QEMU does at a launch: O_TRUNC on the same file, then the new console.
    await truncate(file, 0);
    await appendFile(file, 'second run, longer than the first\n');
    await tail.until('second run, longer than the first\n');
    await tail.stop();
    expect(tail.output()).toBe('first run\n<truncated>second run, longer than the first\n');
  });

  it('follows a replaced file from its start, and waits for a removed one (and its folder) to come back', async () => {
    const dir = join(await tempDir(), 'instance');
    await mkdir(dir);
    const file = join(dir, 'serial.log');
    const tail = follow(file);
    await writeFile(file, 'appeared\n');
    await tail.until('appeared\n');
    await writeFile(`${file}.new`, 'replacement\n');
    await rename(`${file}.new`, file);
    await tail.until('replacement\n');
    await rm(dir, { recursive: true });
    await mkdir(dir);
    await writeFile(file, 'after a reset\n');
    await tail.until('after a reset\n');
    await tail.stop();
    // The new file may get the removed one's inode number back: then its other first bytes tell.
    expect(tail.output()).toMatch(/^appeared\n<replaced>replacement\n<(replaced|truncated)>after a reset\n$/);
  });
});
