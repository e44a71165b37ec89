import { createHash } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../support/logger.js';
import { demoGuestDir, ensureDemoGuest } from './demo/guest.js';
import { WarmvmError } from '../support/errors.js';
import type { CleanupStack } from '../support/cleanup.js';
import type { BootSource } from '../spec/vm.js';
import { urlImageDir } from '../image/names.js';

export interface BootFiles {
  kernel: string | undefined;
  initrd: string | undefined;
  append: string | undefined;
  /** The instance's overlay, which QEMU opens; made over `overlayBase` by a cold boot (a resume makes its own). */
  disk: { path: string; format: 'qcow2' | 'raw' } | undefined;
  overlayBase: { path: string; format: 'qcow2' | 'raw' } | undefined;
  /** The cloud-init seed ISO attached read-only, when the config gives user-data. */
  seed: string | undefined;
  /** Which image, for the trace and the output. */
  description: string;
  built: boolean;
}

export interface BootFilesOptions {
  imagesDir: string;
  /** Where a disk guest's overlay goes: the user's image is never written. */
  overlay: string;
  signal?: AbortSignal;
  logger?: Logger;
  onProgress?: (line: string) => void;
  /** Bytes of a download (or its unpacking) done, of its size: a `url` image. */
  onTransfer?: (what: string, doneBytes: number, totalBytes: number) => void;
  /** Where a `url` image's download registers the release of its lock. */
  cleanup?: CleanupStack;
}

/** Kernel command line of the demo guest: serial console, quiet enough to boot fast under TCG. */
export const DEMO_APPEND = 'console=ttyS0 quiet panic=-1';

/**
 * The folder under `images/` that the guest warmvm builds (or the image it downloads) for this
 * source lives in, whether it is there or not (a pulled snapshot can bring it); undefined for a
 * user's own image.
 */
export async function builtImageDir(source: BootSource, options: { imagesDir: string; signal?: AbortSignal; logger?: Logger }): Promise<string | undefined> {
  if (source.kind === 'demo') return await demoGuestDir(options.imagesDir, options);
  if (source.kind === 'profile') {
    const { debianGuestDir } = await import('./debian/guest.js');
    return await debianGuestDir();
  }
  if (source.kind === 'url') return urlImageDir(source.digest);
  return undefined;
}

/**
 * Resolves what QEMU boots: the demo guest (built when missing), a kernel, or a disk. A disk's
 * overlay is only named here: a cold boot creates it, and a resume makes its own over the snapshot's.
 */
export async function prepareBootFiles(source: BootSource, options: BootFilesOptions): Promise<BootFiles> {
  if (source.kind === 'demo') {
    const guest = await ensureDemoGuest({ imagesDir: options.imagesDir, signal: options.signal, logger: options.logger, onProgress: options.onProgress });
    return {
      kernel: guest.kernel,
      initrd: guest.initrd,
      append: DEMO_APPEND,
      disk: undefined,
      overlayBase: undefined,
      seed: undefined,
      description: `demo-${guest.key}`,
      built: guest.built,
    };
  }
  if (source.kind === 'profile') {
    // Loaded only for this guest: every start of the demo guest would pay for the builder's modules.
    const { DEBIAN_APPEND, ensureDebianGuest } = await import('./debian/guest.js');
    const guest = await ensureDebianGuest({ imagesDir: options.imagesDir, signal: options.signal, logger: options.logger, onProgress: options.onProgress });
    return {
      kernel: guest.kernel,
      initrd: guest.initrd,
      append: DEBIAN_APPEND,
      disk: { path: options.overlay, format: 'qcow2' },
      overlayBase: { path: guest.disk, format: 'qcow2' },
      seed: undefined,
      description: `debian-${guest.key}`,
      built: guest.built,
    };
  }
  if (source.kind === 'kernel') {
    await mustExist(source.kernel, 'image.kernel');
    if (source.initrd) await mustExist(source.initrd, 'image.initrd');
    return {
      kernel: source.kernel,
      initrd: source.initrd,
      append: source.append ?? 'console=ttyS0',
      disk: undefined,
      overlayBase: undefined,
      seed: undefined,
      description: source.kernel,
      built: false,
    };
  }
  if (source.kind === 'disk') await mustExist(source.path, 'image.disk');
  if (source.kernel) await mustExist(source.kernel, 'image.kernel');
  if (source.initrd) await mustExist(source.initrd, 'image.initrd');
  const seed = source.userData ? await seedIso(source.userData, source.metaData, options.imagesDir) : undefined;
  const base = source.kind === 'url' ? await urlImage(source, options) : { path: source.path, description: seed ? `${source.path} + ${seed}` : source.path, built: false };
  return {
    kernel: source.kernel,
    initrd: source.initrd,
    append: source.append,
    disk: { path: options.overlay, format: 'qcow2' },
    overlayBase: { path: base.path, format: source.format },
    seed,
    description: base.description,
    built: base.built,
  };
}

/** A disk image from a URL: from the cache, or downloaded into it; booted like a local disk. */
async function urlImage(source: Extract<BootSource, { kind: 'url' }>, options: BootFilesOptions): Promise<{ path: string; description: string; built: boolean }> {
  // Loaded only for this source: fetch, the lock and the unpackers are no cost to other starts.
  const { ensureUrlImage } = await import('../image/cache.js');
  const image = await ensureUrlImage(source, {
    imagesDir: options.imagesDir,
    signal: options.signal,
    logger: options.logger,
    onProgress: options.onTransfer,
    onWait: options.onProgress,
    cleanup: options.cleanup,
  });
  // The folder's name, by the digest: the config key, and what a snapshot's export packs.
  return { path: image.path, description: image.dir, built: image.downloaded };
}

/**
 * The user's cloud-init files on a NoCloud seed ISO in the images folder, named by their content:
 * the same files give the same path and bytes, so a snapshot's argv still names the right seed.
 */
async function seedIso(userDataPath: string, metaDataPath: string | undefined, imagesDir: string): Promise<string> {
  await mustExist(userDataPath, 'image.userData');
  if (metaDataPath) await mustExist(metaDataPath, 'image.metaData');
  const userData = await readFile(userDataPath);
  const digest = createHash('sha256').update(userData);
  const metaData = metaDataPath ? await readFile(metaDataPath) : undefined;
  if (metaData) digest.update(metaData);
  const key = digest.digest('hex').slice(0, 16);
  const path = join(imagesDir, `seed-${key}.iso`);
  if (
    await stat(path).then(
      (found) => found.isFile(),
      () => false,
    )
  )
    return path;
  await mkdir(imagesDir, { recursive: true });
  // cloud-init runs its per-instance modules once per instance-id: one id per set of files.
  const files = [
    { name: 'user-data', data: userData },
    { name: 'meta-data', data: metaData ?? Buffer.from(`instance-id: warmvm-${key}\nlocal-hostname: warmvm\n`) },
  ];
  const { writeIsoFile } = await import('../formats/iso9660/image.js');
  await writeIsoFile(path, { volumeLabel: 'cidata', files });
  return path;
}

async function mustExist(path: string, field: string): Promise<void> {
  const found = await stat(path).catch(() => undefined);
  if (!found?.isFile()) {
    throw new WarmvmError('E_IMAGE_MISSING', `the config's ${field} ${path} does not exist or is not a file`, { hint: `fix ${field} in the config` });
  }
}
