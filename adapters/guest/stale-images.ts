import { readdir, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { homePaths } from '../instance/paths.js';
import { readBackingFile } from '../qemu/qcow2-header.js';

export interface StaleImages {
  removed: string[];
  /** Old images still backing an instance's disk or a snapshot: removing them would break it. */
  kept: { image: string; usedBy: string; instance: string }[];
}

/**
 * Removes the image folders `<images>/<prefix>*` other than `current`, unless a qcow2 under the home's
 * instances or snapshots backs onto a file inside one (a resume of that snapshot still needs it).
 */
export async function removeStaleImages(home: string, prefix: string, current: string): Promise<StaleImages> {
  const paths = homePaths(home);
  const old = (await readdir(paths.images, { withFileTypes: true }).catch(() => []))
    .filter((entry) => entry.isDirectory() && entry.name.startsWith(prefix) && entry.name !== current)
    .map((entry) => entry.name);
  const result: StaleImages = { removed: [], kept: [] };
  if (old.length === 0) return result;
  const backings = [...(await backingFilesUnder(paths.instances)), ...(await backingFilesUnder(paths.snapshots))];
  for (const image of old) {
    const dir = join(paths.images, image) + sep;
    const user = backings.find((entry) => entry.backing.startsWith(dir));
    if (user) {
      result.kept.push({ image, usedBy: user.overlay, instance: user.instance });
      continue;
    }
    await rm(join(paths.images, image), { recursive: true, force: true });
    result.removed.push(image);
  }
  return result;
}

/** Every qcow2 under `root` (any depth) with the file it backs onto and the instance it belongs to. */
async function backingFilesUnder(root: string): Promise<{ overlay: string; backing: string; instance: string }[]> {
  const found: { overlay: string; backing: string; instance: string }[] = [];
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.qcow2')) continue;
    const overlay = join(entry.parentPath ?? entry.path, entry.name);
    const backing = await readBackingFile(overlay).catch(() => undefined);
    // <root>/<name>/… or a set-aside snapshot, <root>/<name>.set-aside-<time>/…
    const instance = (relative(root, overlay).split(sep)[0] ?? '').replace(/\.set-aside-.*$/, '');
    if (backing) found.push({ overlay, backing, instance });
  }
  return found;
}
