import { mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../support/logger.js';
import type { DebianPackage } from '../debian-packages.js';
import { WarmvmError } from '../../support/errors.js';
import { removeAbandonedBuildDirs } from '../abandoned-builds.js';

/**
 * The demo guest's folders in the images folder: `demo-<key>/` holds a complete image (kernel,
 * initrd, manifest.json) or does not exist; `.demo-build-<pid>-*` is a build in progress, renamed
 * to `demo-<key>/` only once complete, so a killed build never leaves half an image.
 */

/** The start of every image folder's name: `demo-<key>`. */
export const IMAGE_PREFIX = 'demo-';
const BUILD_PREFIX = '.demo-build-';
/** The file in an image folder that describes it, written last. */
export const MANIFEST = 'manifest.json';

/** A complete demo guest: the files QEMU boots. */
export interface DemoGuest {
  kernel: string;
  initrd: string;
  key: string;
  /** False when an earlier build was reused. */
  built: boolean;
}

/** What manifest.json records of an image: its inputs and its files. */
export interface DemoGuestManifest {
  key: string;
  builderVersion: number;
  /** Hash of the local files in the image (init, workload scripts). */
  localDigest: string;
  packages: DebianPackage[];
  kernelRelease: string;
  /** "pvh-elf": the uncompressed vmlinux (boots without the emulated decompressor); "bzImage" otherwise. */
  kernelFormat: 'pvh-elf' | 'bzImage';
  modules: string[];
  createdAt: string;
  kernel: { file: string; bytes: number };
  initrd: { file: string; bytes: number };
}

/** The folder of the image with this key. */
export function imageDirFor(imagesDir: string, key: string): string {
  return join(imagesDir, IMAGE_PREFIX + key);
}

/** A fresh build folder beside the images, removed by the caller when the build does not publish it. */
export async function createBuildDir(imagesDir: string): Promise<string> {
  return mkdtemp(join(imagesDir, `${BUILD_PREFIX}${process.pid}-`));
}

/** The image in `imageDir` when complete: its manifest names this key and both files have the recorded sizes. */
export async function readImage(imageDir: string, key: string): Promise<DemoGuest | undefined> {
  const manifest = await readManifest(imageDir, key);
  if (!manifest) return undefined;
  const kernel = join(imageDir, manifest.kernel.file);
  const initrd = join(imageDir, manifest.initrd.file);
  const [kernelInfo, initrdInfo] = await Promise.all([stat(kernel).catch(() => undefined), stat(initrd).catch(() => undefined)]);
  if (!kernelInfo?.isFile() || kernelInfo.size !== manifest.kernel.bytes || !initrdInfo?.isFile() || initrdInfo.size !== manifest.initrd.bytes) return undefined;
  return { kernel, initrd, key, built: false };
}

/** The manifest in `imageDir` when it is well-formed and names this key. */
export async function readManifest(imageDir: string, key: string): Promise<DemoGuestManifest | undefined> {
  let parsed: Partial<DemoGuestManifest>;
  try {
    parsed = JSON.parse(await readFile(join(imageDir, MANIFEST), 'utf8')) as Partial<DemoGuestManifest>;
  } catch {
    return undefined;
  }
  const ok = parsed.key === key && isFileRecord(parsed.kernel) && isFileRecord(parsed.initrd) && typeof parsed.createdAt === 'string' && typeof parsed.builderVersion === 'number';
  return ok ? (parsed as DemoGuestManifest) : undefined;
}

/** A file inside the image folder, never a path elsewhere. */
function isFileRecord(value: unknown): value is { file: string; bytes: number } {
  if (typeof value !== 'object' || value === null) return false;
  const { file, bytes } = value as { file?: unknown; bytes?: unknown };
  return typeof file === 'string' && /^[\w.-]+$/.test(file) && typeof bytes === 'number';
}

/** The newest complete image in `imagesDir` matching `filter`, read from the folders alone (no apt). */
export async function findNewestImage(imagesDir: string, filter: (manifest: DemoGuestManifest) => boolean): Promise<DemoGuest | undefined> {
  let newest: { guest: DemoGuest; createdAt: string } | undefined;
  for (const name of await readdir(imagesDir).catch(() => [] as string[])) {
    if (!name.startsWith(IMAGE_PREFIX)) continue;
    const dir = join(imagesDir, name);
    const key = name.slice(IMAGE_PREFIX.length);
    const manifest = await readManifest(dir, key);
    if (!manifest || !filter(manifest)) continue;
    const guest = await readImage(dir, key);
    if (guest && (!newest || manifest.createdAt > newest.createdAt)) newest = { guest, createdAt: manifest.createdAt };
  }
  return newest?.guest;
}

/**
 * Renames a finished build into place. A concurrent build that got there first wins (same key,
 * same inputs); `replace` (a forced rebuild) swaps the old image out instead.
 */
export async function publishImage(buildDir: string, imageDir: string, key: string, replace: boolean, logger: Logger): Promise<DemoGuest> {
  if (replace || !(await readImage(imageDir, key))) {
    const old = `${buildDir}.old`;
    // Whatever is there now is incomplete (or being replaced): move it out of the way first.
    await rename(imageDir, old).catch(() => undefined);
    try {
      await rename(buildDir, imageDir);
    } catch (cause) {
      if (!(await readImage(imageDir, key))) {
        throw new WarmvmError('E_GUEST_PUBLISH', `cannot move the built demo guest into ${imageDir}`, { hint: 'check that the images folder is writable', cause });
      }
      logger.debug({ key }, 'another build published this demo guest first');
    } finally {
      await rm(old, { recursive: true, force: true });
    }
  }
  const image = await readImage(imageDir, key);
  if (!image) throw new WarmvmError('E_GUEST_PUBLISH', `the demo guest in ${imageDir} is incomplete right after building it`, { hint: 'run "warmvm guest build --force"' });
  return { ...image, built: true };
}

/** Build folders of processes that died mid-build (killed, power cut) are removed; live builds are left alone. */
export async function removeAbandonedBuilds(imagesDir: string, logger: Logger): Promise<void> {
  for (const folder of await removeAbandonedBuildDirs(imagesDir, BUILD_PREFIX)) logger.debug({ folder }, 'removed an abandoned demo guest build');
}
