import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isProcessAlive } from '../support/process-alive.js';

/**
 * `<home>/blobs/`: the compressed copies of the snapshots this home pushed, pulled, exported or
 * imported, by digest, and which file each packed copy came from (`packed/`). A cache: the store
 * holds the snapshots themselves, and a push compresses again what is gone.
 */
export function blobCacheDir(home: string): string {
  return join(home, 'blobs');
}

/** What the cache takes on the disk, and the blobs a live pull is downloading now (kept by clearBlobCache). */
export async function blobCacheUsage(home: string): Promise<{ bytesOnDisk: number; busy: string[] }> {
  const { files, busy } = await cacheFiles(home);
  let bytesOnDisk = 0;
  for (const file of files) bytesOnDisk += ((await lstat(file).catch(() => undefined))?.blocks ?? 0) * 512;
  return { bytesOnDisk, busy };
}

/** Empties the cache but for blobs a live pull is downloading (their `.lock` names a live pid). */
export async function clearBlobCache(home: string): Promise<void> {
  const { files } = await cacheFiles(home);
  for (const file of files) await rm(file, { recursive: true, force: true });
}

async function cacheFiles(home: string): Promise<{ files: string[]; busy: string[] }> {
  const sha256 = join(blobCacheDir(home), 'sha256');
  const entries = await readdir(sha256).catch(() => [] as string[]);
  const busy: string[] = [];
  for (const entry of entries.filter((name) => name.endsWith('.lock'))) {
    const pid = Number.parseInt(await readFile(join(sha256, entry), 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 0 && (await isProcessAlive(pid))) busy.push(entry.slice(0, -'.lock'.length));
  }
  const files = entries.filter((name) => !busy.some((hex) => name.startsWith(hex))).map((name) => join(sha256, name));
  const packed = join(blobCacheDir(home), 'packed');
  if ((await lstat(packed).catch(() => undefined)) !== undefined) files.push(packed);
  return { files, busy };
}
