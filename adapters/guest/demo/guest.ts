import { mkdir, rm } from 'node:fs/promises';
import type { Logger } from '../../support/logger.js';
import { pruneDownloadCache, type DebianPackage } from '../debian-packages.js';
import { reportProgress } from '../progress.js';
import { throwIfAborted } from '../../support/errors.js';
import { moduleLogger, silentLogger } from '../../support/logger.js';
import { DEMO_GUEST_BUILDER_VERSION, imageKey } from './key.js';
import { digestLocalInputs, readLocalInputs } from './local-files.js';
import { downloadCacheDir, resolvePackages } from './packages.js';
import { createBuildDir, findNewestImage, IMAGE_PREFIX, imageDirFor, publishImage, readImage, removeAbandonedBuilds, type DemoGuest } from './store.js';

/**
 * warmvm's demo guest: a Debian 12 kernel and a small initramfs (busybox, the QEMU guest agent,
 * the workload from docker/), built from Debian packages with the host's apt and cached in
 * `<imagesDir>/demo-<key>/`, where the key hashes every input: the exact package versions, the
 * local files copied in, and the builder's version. Which packages: packages.ts; the build:
 * build.ts and initramfs.ts; the folders it is kept in: store.ts.
 */

/** The guest command the host runs through the agent, with NAME=hex lines on stdin. */
export const DEMO_GUEST_ROTATE_COMMAND = '/usr/local/bin/rotate-secrets';
/** The guest port the workload serves GET /health and GET /secret-fingerprint on. */
export const DEMO_GUEST_HTTP_PORT = 8080;

/** Where to build, what to report to, and whether to build again. */
export interface EnsureDemoGuestOptions {
  imagesDir: string;
  logger?: Logger;
  onProgress?: (message: string) => void;
  signal?: AbortSignal;
  /** Build again even when an image with this key exists. */
  force?: boolean;
}

/**
 * The folder under `images/` the demo guest of this host's inputs lives in (built or not), without
 * building it; undefined when apt cannot resolve the packages now.
 */
export async function demoGuestDir(imagesDir: string, options: { signal?: AbortSignal; logger?: Logger } = {}): Promise<string | undefined> {
  const localDigest = digestLocalInputs(await readLocalInputs());
  try {
    const packages = await resolvePackages(imagesDir, { signal: options.signal, logger: moduleLogger(options.logger ?? silentLogger, 'demo-guest') });
    return IMAGE_PREFIX + imageKey(packages, localDigest);
  } catch {
    return undefined;
  }
}

/**
 * The demo guest's kernel and initrd, built on first use (about 10 s and a 70 MB download).
 * A later call with unchanged inputs returns the same files without running apt while apt's
 * index is unchanged; when apt cannot answer at all, the newest image built from the same local
 * files is used rather than failing.
 */
export async function ensureDemoGuest(options: EnsureDemoGuestOptions): Promise<DemoGuest> {
  const logger = moduleLogger(options.logger ?? silentLogger, 'demo-guest');
  const progress = reportProgress(logger, options.onProgress);
  const { imagesDir, signal } = options;
  throwIfAborted(signal, 'building the demo guest');

  const local = await readLocalInputs();
  const localDigest = digestLocalInputs(local);
  let packages: DebianPackage[];
  try {
    packages = await resolvePackages(imagesDir, { signal, logger });
  } catch (error) {
    const fallback = options.force || signal?.aborted ? undefined : await findBuiltDemoGuest(imagesDir, { localDigest });
    if (!fallback) throw error;
    logger.warn({ err: error, key: fallback.key }, 'apt could not resolve the package versions; using the demo guest built earlier');
    return fallback;
  }
  const key = imageKey(packages, localDigest);
  const imageDir = imageDirFor(imagesDir, key);
  if (!options.force) {
    const cached = await readImage(imageDir, key);
    if (cached) return cached;
  }

  await mkdir(imagesDir, { recursive: true });
  await removeAbandonedBuilds(imagesDir, logger);
  const started = Date.now();
  const buildDir = await createBuildDir(imagesDir);
  try {
    // Loaded only to build: a start that finds its image cached never pays for the builder's modules.
    const { buildImage } = await import('./build.js');
    await buildImage({ buildDir, imagesDir, key, localDigest, local, packages, signal, logger, progress });
    throwIfAborted(signal, 'building the demo guest');
    const published = await publishImage(buildDir, imageDir, key, options.force === true, logger);
    await pruneDownloadCache(downloadCacheDir(imagesDir), packages).catch((error: unknown) => logger.warn({ err: error }, 'cannot prune the package cache'));
    progress(`demo guest ${key} built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return published;
  } finally {
    await rm(buildDir, { recursive: true, force: true });
  }
}

/**
 * The newest complete demo guest in `imagesDir` built by this builder version (and, when given,
 * from these local files), without asking apt: for `warmvm doctor`, and when apt cannot answer.
 */
export async function findBuiltDemoGuest(imagesDir: string, filter: { localDigest?: string } = {}): Promise<DemoGuest | undefined> {
  return findNewestImage(
    imagesDir,
    (manifest) => manifest.builderVersion === DEMO_GUEST_BUILDER_VERSION && (filter.localDigest === undefined || manifest.localDigest === filter.localDigest),
  );
}
