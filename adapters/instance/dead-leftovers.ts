import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isProcessAlive } from '../support/process-alive.js';

/** Files written beside what they publish, named for their writer: `x.tmp-<pid>`, and a lock's `x.lock.<pid>`. */
const WRITER = /(?:\.tmp-|\.lock\.|^\.lock-[0-9a-f]+\.)(\d+)$/;

/**
 * Removes, from `dir` (not below it), the files that a warmvm killed mid-write left: those whose
 * writer is gone. A live writer's are its own to rename or remove. Folders are left alone: a
 * suspend's unfinished folder may hold the instance's disk, and the next suspend sets it aside.
 * Says which went.
 */
export async function removeDeadWritersFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const { name } = entry;
    const writer = WRITER.exec(name)?.[1];
    if (entry.isDirectory() || writer === undefined || Number(writer) === process.pid || (await isProcessAlive(Number(writer)))) continue;
    await rm(join(dir, name), { force: true });
    removed.push(join(dir, name));
  }
  return removed;
}
