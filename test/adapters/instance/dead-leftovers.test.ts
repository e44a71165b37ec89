import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeDeadWritersFiles } from '../../../adapters/instance/dead-leftovers.js';
import { useTempDirs } from '../../helpers/temp.js';

/** The pid of a process that has exited. */
function deadPid(): number {
  const pid = spawnSync('true').pid;
  if (pid === undefined) throw new Error('could not run true');
  return pid;
}

describe('removeDeadWritersFiles', () => {
  const temp = useTempDirs();

  it("removes the temp and lock files of writers that are gone, and keeps a live writer's and every other file", async () => {
    const dir = await temp();
    const dead = deadPid();
    const files = [
      `secrets.env.tmp-${dead}`,
      `state.json.tmp-${dead}`,
      `start.lock.${dead}`,
      `.lock-0123456789abcdef.${dead}`,
      `secrets.env.tmp-${process.pid}`,
      `start.lock.${process.ppid}`,
      'secrets.env',
      'start.lock',
      'trace.jsonl',
    ];
    for (const file of files) await writeFile(join(dir, file), 'x');
    // A suspend's unfinished folder may hold the instance's disk: never removed here.
    await mkdir(join(dir, `suspended.tmp-${dead}`));
    const removed = await removeDeadWritersFiles(dir);
    expect(removed.map((path) => path.slice(dir.length + 1)).sort()).toEqual(
      [`.lock-0123456789abcdef.${dead}`, `secrets.env.tmp-${dead}`, `start.lock.${dead}`, `state.json.tmp-${dead}`].sort(),
    );
    expect((await readdir(dir)).sort()).toEqual(
      ['secrets.env', `secrets.env.tmp-${process.pid}`, 'start.lock', `start.lock.${process.ppid}`, `suspended.tmp-${dead}`, 'trace.jsonl'].sort(),
    );
  });
});
