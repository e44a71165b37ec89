import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isProcessAlive } from '../support/process-alive.js';

/** Files written beside what they publish, named for their writer: `x.tmp-<pid>`, and a lock's `x.lock.<pid>`. */
const WRITER = /(?:\.tmp-|\.lock\.|^\.lock-[0-9a-f]+\.)(\d+)$/;

/**
 * Removes, from `dir` (not below it), the files that a warmvm killed mid-write left: those whose
 * writer is gone. A live writer's are its own to rename or remove. Says which went.
 */
export async function removeDeadWritersFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const writer = WRITER.exec(name)?.[1];
    if (writer === undefined || Number(writer) === process.pid || (await isProcessAlive(Number(writer)))) continue;
    await rm(join(dir, name), { force: true });
    removed.push(join(dir, name));
  }
  return removed;
}
