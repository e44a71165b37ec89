import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../support/logger.js';
import { tryLock } from '../instance/lock.js';
import type { CleanupStack } from '../support/cleanup.js';
import { syncDir } from '../support/durable.js';
import { sleep } from '../support/sleep.js';
import { checkDiskFormat } from './disk-format.js';
import { downloadVerified, removePartial } from './download.js';
import { type ImageDigest, urlImageDir, urlImageFile } from './names.js';
import { shownUrl, urlFileName } from './shown-url.js';
import { unpackImage } from './unpack.js';

/*
 * Disk images named by URL, kept in the home's images/ by the digest of what was downloaded:
 *
 *   images/url-<algorithm>-<hex>/disk.<format>     the image, published whole (QEMU's backing file)
 *   images/.download-url-<algorithm>-<hex>.partial what a cut download got so far (+ .json: its validators)
 *   images/.lock-url-<algorithm>-<hex>             held while one warmvm downloads it
 *
 * A folder per image, like the guests warmvm builds: a snapshot's export or push packs it, and a
 * pull installs it, so a host that pulled the snapshot never downloads the image.
 */

export interface UrlImageSource {
  url: string;
  digest: ImageDigest;
  format: 'qcow2' | 'raw';
  compression: 'xz' | 'zstd' | undefined;
}

export interface UrlImage {
  /** The disk image QEMU reads (through an overlay). */
  path: string;
  /** Its folder's name under images/: what the config key and a snapshot's packing name it by. */
  dir: string;
  /** Whether this call downloaded it (else it was in the cache). */
  downloaded: boolean;
}

export interface UrlImageOptions {
  imagesDir: string;
  signal?: AbortSignal;
  logger?: Logger;
  /** Bytes of one step (`downloading NAME`, `unpacking NAME`) done, of its size (0 while unknown). */
  onProgress?: (what: string, doneBytes: number, totalBytes: number) => void;
  /** A line for a person: another warmvm is downloading the same image, this one waits. */
  onWait?: (line: string) => void;
  /** The download lock's release is registered here while it is held: it goes on every way out. */
  cleanup?: CleanupStack;
  /** Passed to the download (tests shorten the wait between tries). */
  attempts?: number;
  retryDelayMs?: number;
}

/** How often a start waiting for another's download looks again. */
const WAIT_POLL_MS = 200;

/**
 * The image of `source`, from the cache when it is there (no request made), else downloaded once:
 * under a lock, so two starts at once download it once (the second waits, then finds it); hashed
 * on the way, refused unless its digest matches, unpacked, checked to be the format the config
 * says, flushed and renamed into place. A cut or interrupted download keeps its partial file and
 * the next call continues it.
 */
export async function ensureUrlImage(source: UrlImageSource, options: UrlImageOptions): Promise<UrlImage> {
  const dirName = urlImageDir(source.digest);
  const dir = join(options.imagesDir, dirName);
  const file = join(dir, urlImageFile(source.format));
  const cached: UrlImage = { path: file, dir: dirName, downloaded: false };
  if (await isFile(file)) return cached;
  await mkdir(options.imagesDir, { recursive: true });
  const lockFile = join(options.imagesDir, `.lock-${dirName}`);
  const shown = shownUrl(source.url);
  let waitingFor: number | undefined;
  for (;;) {
    const taken = await tryLock(lockFile);
    if ('lock' in taken) {
      const held = options.cleanup?.add(`release the download lock of ${dirName}`, () => taken.lock.release());
      try {
        // The one that held the lock may have published it.
        if (await isFile(file)) return cached;
        await download(source, { ...options, dir, file, dirName, shown });
        return { ...cached, downloaded: true };
      } finally {
        await (held ? held.run() : taken.lock.release());
      }
    }
    if (waitingFor !== taken.holder) options.onWait?.(`another warmvm (pid ${taken.holder}) is downloading ${shown}: waiting for it`);
    waitingFor = taken.holder;
    await sleep(WAIT_POLL_MS, options.signal);
    if (await isFile(file)) return cached;
  }
}

async function download(source: UrlImageSource, options: UrlImageOptions & { dir: string; file: string; dirName: string; shown: string }): Promise<void> {
  const { imagesDir, dir, file, dirName, shown, signal, onProgress } = options;
  const name = urlFileName(source.url);
  const partial = join(imagesDir, `.download-${dirName}.partial`);
  // What a killed warmvm left half-unpacked; the lock says none is at work on it now.
  const stagingPrefix = `.${dirName}.tmp-`;
  for (const entry of await readdir(imagesDir)) if (entry.startsWith(stagingPrefix)) await rm(join(imagesDir, entry), { recursive: true, force: true });

  await downloadVerified(source.url, partial, source.digest, {
    signal,
    logger: options.logger,
    attempts: options.attempts,
    retryDelayMs: options.retryDelayMs,
    onProgress: onProgress && ((done, total) => onProgress(`downloading ${name}`, done, total)),
  });
  const staging = join(imagesDir, `${stagingPrefix}${process.pid}`);
  await mkdir(staging);
  try {
    const staged = join(staging, basename(file));
    await unpackImage(partial, staged, source.compression, shown, {
      signal,
      onProgress: onProgress && ((done, total) => onProgress(`unpacking ${name}`, done, total)),
    });
    await checkDiskFormat(staged, source.format, shown);
    if (await isDir(dir)) {
      // A folder of this digest without this format's file: the file alone goes in.
      await rename(staged, file);
      await syncDir(dir);
    } else {
      await syncDir(staging);
      await rename(staging, dir);
    }
    await syncDir(imagesDir);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  // Published: the download is not needed any more (an uncompressed one is the image itself, by a second link).
  await removePartial(partial);
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true;
}

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() === true;
}
