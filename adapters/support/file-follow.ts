import { type FSWatcher, watch } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface FollowOptions {
  onData: (chunk: Buffer) => void;
  /**
   * The file began anew: emptied and written again in place (QEMU opens `-serial file:` with
   * O_TRUNC at every launch), or another file in its place (replaced, or there again after it went).
   */
  onRestart?: (how: 'truncated' | 'replaced') => void;
  signal: AbortSignal;
  /** The fallback pause between checks when no change is signalled. Default 1 s. */
  pollMs?: number;
}

const CHUNK = 64 * 1024;
/** The first bytes read: when they change, the file was written anew even if it grew past where we were. */
const HEAD = 256;

/**
 * `tail -F` of one file from its start until `signal` fires: what is there, then what is added.
 * Woken by fs.watch on the file's folder (inotify: a write, a rename, a new file) and, since a
 * watch misses what happens while its folder is gone (a reset removes it), by a slow poll too.
 */
export async function followFile(path: string, options: FollowOptions): Promise<void> {
  const waker = new FolderWaker(dirname(path));
  let file: { handle: FileHandle; ino: number; offset: number; head: Buffer } | undefined;
  let followedOne = false;
  try {
    while (!options.signal.aborted) {
      if (!file) {
        const handle = await open(path, 'r').catch(() => undefined);
        if (handle) {
          file = { handle, ino: (await handle.stat()).ino, offset: 0, head: Buffer.alloc(0) };
          if (followedOne) options.onRestart?.('replaced');
          followedOne = true;
        } else {
          // A watch on a folder that was removed (and made again) sees nothing: watch it afresh.
          waker.close();
        }
      }
      if (file) {
        await readNew(file, options.onData);
        const now = await stat(path).catch(() => undefined);
        if (now === undefined || now.ino !== file.ino) {
          // Gone or replaced: the old file is read to its end above; the next one from its start.
          await file.handle.close();
          file = undefined;
          if (now !== undefined) continue;
        } else if (await writtenAnew(file)) {
          file.offset = 0;
          file.head = Buffer.alloc(0);
          options.onRestart?.('truncated');
          continue;
        }
      }
      await waker.wait(options.pollMs ?? 1_000, options.signal);
    }
  } finally {
    waker.close();
    await file?.handle.close();
  }
}

async function readNew(file: { handle: FileHandle; offset: number; head: Buffer }, onData: (chunk: Buffer) => void): Promise<void> {
  for (;;) {
    const buffer = Buffer.alloc(CHUNK);
    const { bytesRead } = await file.handle.read(buffer, 0, CHUNK, file.offset);
    if (bytesRead === 0) return;
    const chunk = buffer.subarray(0, bytesRead);
    if (file.head.length < HEAD && file.offset === file.head.length) file.head = Buffer.concat([file.head, chunk.subarray(0, HEAD - file.head.length)]);
    file.offset += bytesRead;
    onData(chunk);
  }
}

/** Shorter than what was read, or starting with other bytes: emptied and written again. */
async function writtenAnew(file: { handle: FileHandle; offset: number; head: Buffer }): Promise<boolean> {
  const { size } = await file.handle.stat();
  if (size < file.offset) return true;
  if (file.head.length === 0) return false;
  const head = Buffer.alloc(file.head.length);
  const { bytesRead } = await file.handle.read(head, 0, head.length, 0);
  return bytesRead < head.length || !head.equals(file.head);
}

/** Resolves a wait early when anything in the folder changes; watching again once the folder is back. */
class FolderWaker {
  private watcher: FSWatcher | undefined;
  private changed = false;
  private wake: (() => void) | undefined;

  constructor(private readonly folder: string) {}

  async wait(ms: number, signal: AbortSignal): Promise<void> {
    this.watch();
    if (this.changed) {
      this.changed = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
    this.changed = false;
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private watch(): void {
    if (this.watcher) return;
    try {
      this.watcher = watch(this.folder, { persistent: false }, () => {
        this.changed = true;
        this.wake?.();
      });
      // The folder went (a reset): poll until it is back, then watch it again.
      this.watcher.on('error', () => this.close());
    } catch {
      this.watcher = undefined;
    }
  }
}
