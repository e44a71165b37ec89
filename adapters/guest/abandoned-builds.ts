import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isProcessAlive } from '../support/process-alive.js';

/**
 * Removes the build folders (`<prefix><pid>-*`) of processes that died mid-build (killed, power
 * cut); live builds and this process's own are left alone. `beforeRemove` runs first on each (the
 * Debian build unmounts what debootstrap left mounted). Returns the folders removed.
 */
export async function removeAbandonedBuildDirs(imagesDir: string, prefix: string, beforeRemove?: (dir: string) => Promise<void>): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(imagesDir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!pid || pid === process.pid || (await isProcessAlive(pid))) continue;
    const dir = join(imagesDir, name);
    await beforeRemove?.(dir);
    await rm(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
