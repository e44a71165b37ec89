import { readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Moves `dir` out of the way to `<prefix><time>` with its reason in reason.txt, and removes the
 * oldest such folders beyond `keep`: kept to look at what went wrong, not a store. Returns where it went.
 */
export async function setAsideFolder(dir: string, prefix: string, reason: string, keep: number): Promise<string> {
  const target = `${prefix}${new Date().toISOString().replace(/[:.]/g, '-')}`;
  // The reason first: a kill between the two steps leaves no set-aside folder without one.
  await writeFile(join(dir, 'reason.txt'), `${reason}\n`);
  await rename(dir, target);
  const parent = dirname(prefix);
  const asides = (await readdir(parent)).filter((entry) => entry.startsWith(basename(prefix))).sort();
  for (const stale of asides.slice(0, Math.max(0, asides.length - keep))) await rm(join(parent, stale), { recursive: true, force: true });
  return target;
}
