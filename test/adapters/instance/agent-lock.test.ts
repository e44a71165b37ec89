import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireAgentLock } from '../../../adapters/instance/agent-lock.js';
import { useTempDirs } from '../../helpers/temp.js';

const tempDir = useTempDirs('wvm-agentlock-');

describe('acquireAgentLock', () => {
  it('is taken with our pid and given back', async () => {
    const file = join(await tempDir(), 'agent.lock');
    const lock = await acquireAgentLock(file, 'one', { waitMs: 0 });
    expect((await readFile(file, 'utf8')).trim()).toBe(String(process.pid));
    await lock.release();
    await expect(readFile(file)).rejects.toThrow();
  });

  it('held by another live process: waits its bound, then says busy with the holder', async () => {
    const file = join(await tempDir(), 'agent.lock');
    const holder = execa('sleep', ['30']);
    try {
      await writeFile(file, `${holder.pid}\n`);
      await expect(acquireAgentLock(file, 'one', { waitMs: 300 })).rejects.toMatchObject({ code: 'E_AGENT_BUSY', message: expect.stringContaining(`pid ${holder.pid}`) });
    } finally {
      holder.kill();
      await holder.catch(() => undefined);
    }
  });

  it('held by a process that is gone: taken over', async () => {
    const file = join(await tempDir(), 'agent.lock');
    const gone = execa('true');
    await gone;
    await writeFile(file, `${gone.pid}\n`);
    const lock = await acquireAgentLock(file, 'one', { waitMs: 0 });
    expect((await readFile(file, 'utf8')).trim()).toBe(String(process.pid));
    await lock.release();
  });

  it('taken as soon as the holder lets go while it waits', async () => {
    const file = join(await tempDir(), 'agent.lock');
    const holder = execa('sleep', ['30']);
    await writeFile(file, `${holder.pid}\n`);
    const waiting = acquireAgentLock(file, 'one', { waitMs: 20_000 });
    holder.kill();
    await holder.catch(() => undefined);
    const lock = await waiting;
    expect((await readFile(file, 'utf8')).trim()).toBe(String(process.pid));
    await lock.release();
  });
});
