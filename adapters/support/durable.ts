import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Flushes a file's data to the disk, so a rename that publishes it cannot outlive its contents. */
export async function syncFile(path: string): Promise<void> {
  await flush(path, 'data');
}

/** Flushes a folder's entries: a rename in it survives a power loss only once this returns. */
export async function syncDir(path: string): Promise<void> {
  await flush(path, 'all');
}

async function flush(path: string, what: 'data' | 'all'): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await (what === 'data' ? handle.datasync() : handle.sync());
  } finally {
    await handle.close();
  }
}

/** Written beside, flushed, renamed over `path`, the folder flushed: readers see the old file or the whole new one. */
export async function writeFileDurably(path: string, data: string, mode = 0o644): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  await syncDir(dirname(path));
}
