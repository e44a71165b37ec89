import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Logger } from 'pino';
import { writeNewc } from '../../formats/cpio.js';
import {
  aptStateFingerprint,
  downloadPackages,
  extractPackage,
  GUEST_ARCH,
  pruneDownloadCache,
  resolveCandidateVersions,
  resolveDependencyName,
  type DebianPackage,
} from '../debian-packages.js';
import { demoRootfsEntries } from './rootfs.js';
import {
  createBuildDir,
  findNewestImage,
  imageDirFor,
  MANIFEST,
  publishImage,
  readImage,
  removeAbandonedBuilds,
  type DemoGuest,
  type DemoGuestManifest,
} from './store.js';
import { throwIfAborted, WarmvmError } from '../../support/errors.js';
import { extractPvhKernel } from './kernel-image.js';
import { resolveModuleLoadOrder } from './kernel-modules.js';
import { moduleLogger, silentLogger } from '../../support/logger.js';
import { projectRoot } from '../../support/project-root.js';

export type { DemoGuest } from './store.js';

/**
 * warmvm's demo guest: a Debian 12 kernel and a small initramfs (busybox, the QEMU guest agent,
 * the workload from docker/), built from Debian packages with the host's apt and cached in
 * `<imagesDir>/demo-<key>/`, where the key hashes every input: the exact package versions, the
 * local files copied in, and the builder's version.
 */

/** Bump when the build changes in a way the inputs' hash cannot see (layout, cpio writer, kernel handling). */
export const DEMO_GUEST_BUILDER_VERSION = 1;

/** The guest command the host runs through the agent, with NAME=hex lines on stdin. */
export const DEMO_GUEST_ROTATE_COMMAND = '/usr/local/bin/rotate-secrets';
/** The guest port the workload serves GET /health and GET /secret-fingerprint on. */
export const DEMO_GUEST_HTTP_PORT = 8080;

const KERNEL_METAPACKAGE = 'linux-image-amd64';
const KERNEL_PACKAGE = /^linux-image-\d.*-amd64$/;
const USERLAND_PACKAGES = ['busybox-static', 'qemu-guest-agent'];
/**
 * What bookworm's qemu-ga loads, all the way down. Not its "Depends": those drag in perl (through
 * init-system-helpers) and libraries it never loads. The build follows DT_NEEDED from qemu-ga and
 * fails naming any library none of these packages ships.
 */
const AGENT_LIBRARY_PACKAGES = ['libc6', 'libglib2.0-0', 'libpcre2-8-0', 'libnuma1', 'libudev1', 'liburing2'];
/** Leaves only: their dependencies (virtio, virtio_ring, failover, …) are read from the modules themselves. */
const GUEST_MODULES = ['virtio_pci', 'virtio_console', 'virtio_net'];
/** From docker/, installed in the guest's /usr/local/bin. */
const WORKLOAD_SCRIPTS = ['health-server', 'rotate-secrets'];
const INIT_SCRIPT = 'guest/demo/init';

const DOWNLOAD_CACHE = '.debian-packages';
const RESOLUTION_MEMO = '.demo-packages.json';

export interface EnsureDemoGuestOptions {
  imagesDir: string;
  logger?: Logger;
  onProgress?: (message: string) => void;
  signal?: AbortSignal;
  /** Build again even when an image with this key exists. */
  force?: boolean;
}

export interface DemoGuestRequirement {
  command: string;
  why: string;
  fix: string;
  /** The build works without it, only slower or less well. */
  optional: boolean;
}

interface LocalInput {
  /** Relative to the project root, e.g. docker/health-server. */
  source: string;
  data: Buffer;
}

/** Host commands the build runs; `warmvm doctor` checks each. */
export function demoGuestRequirements(): DemoGuestRequirement[] {
  const onDebian = 'the demo guest is built from Debian packages: build it on Debian 12 (or give the config your own "kernel" or "disk")';
  return [
    { command: 'apt-cache', why: 'resolves the Debian package versions the demo guest is built from', fix: `run "apt-get update"; ${onDebian}`, optional: false },
    { command: 'apt-get', why: 'downloads the Debian packages of the demo guest', fix: `run "apt-get update"; ${onDebian}`, optional: false },
    { command: 'dpkg-deb', why: 'unpacks the downloaded Debian packages', fix: onDebian, optional: false },
    { command: 'xz', why: 'decompresses the guest kernel once, so it boots about 3 s faster under TCG', fix: 'apt-get install xz-utils', optional: true },
  ];
}

/**
 * The demo guest's kernel and initrd, built on first use (about 10 s and a 70 MB download).
 * A later call with unchanged inputs returns the same files without running apt while apt's
 * index is unchanged; when apt cannot answer at all, the newest image built from the same local
 * files is used rather than failing.
 */
export async function ensureDemoGuest(options: EnsureDemoGuestOptions): Promise<DemoGuest> {
  const logger = moduleLogger(options.logger ?? silentLogger, 'demo-guest');
  const progress = (message: string): void => {
    logger.info(message);
    options.onProgress?.(message);
  };
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
    await buildImage({ buildDir, imagesDir, key, localDigest, local, packages, signal, logger, progress });
    throwIfAborted(signal, 'building the demo guest');
    const published = await publishImage(buildDir, imageDir, key, options.force === true, logger);
    await pruneDownloadCache(join(imagesDir, DOWNLOAD_CACHE), packages).catch((error: unknown) => logger.warn({ err: error }, 'cannot prune the package cache'));
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

/**
 * The exact Debian package versions apt would use now: the kernel behind the metapackage,
 * userland, libraries. Remembered beside the images together with a fingerprint of apt's index,
 * and reused while that fingerprint holds (after "apt-get update" it changes and apt is asked again).
 */
async function resolvePackages(imagesDir: string, options: { signal: AbortSignal | undefined; logger: Logger }): Promise<DebianPackage[]> {
  const memoFile = join(imagesDir, RESOLUTION_MEMO);
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ apt: await aptStateFingerprint(), builder: DEMO_GUEST_BUILDER_VERSION, wanted: [KERNEL_METAPACKAGE, ...USERLAND_PACKAGES, ...AGENT_LIBRARY_PACKAGES] }))
    .digest('hex');
  const memo = await readFile(memoFile, 'utf8')
    .then((text) => JSON.parse(text) as { fingerprint?: unknown; packages?: unknown })
    .catch(() => undefined);
  if (memo?.fingerprint === fingerprint && isPackageList(memo.packages)) return memo.packages;

  const kernel = await resolveDependencyName(KERNEL_METAPACKAGE, KERNEL_PACKAGE, options);
  const packages = await resolveCandidateVersions([kernel, ...USERLAND_PACKAGES, ...AGENT_LIBRARY_PACKAGES], options);
  try {
    await mkdir(imagesDir, { recursive: true });
    const temp = `${memoFile}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify({ fingerprint, packages }) + '\n');
    await rename(temp, memoFile);
  } catch (error) {
    options.logger.debug({ err: error }, 'cannot remember the resolved package versions');
  }
  return packages;
}

function isPackageList(value: unknown): value is DebianPackage[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((item: unknown) => typeof item === 'object' && item !== null && typeof (item as DebianPackage).name === 'string' && typeof (item as DebianPackage).version === 'string')
  );
}

async function readLocalInputs(): Promise<LocalInput[]> {
  const root = projectRoot();
  const sources = [INIT_SCRIPT, ...WORKLOAD_SCRIPTS.map((name) => `docker/${name}`)];
  return Promise.all(
    sources.map(async (source) => {
      try {
        return { source, data: await readFile(join(root, source)) };
      } catch (cause) {
        throw new WarmvmError('E_GUEST_SOURCES', `the demo guest's ${source} is missing from ${root}`, {
          hint: 'reinstall warmvm: its package must ship docker/ and guest/',
          cause,
        });
      }
    }),
  );
}

function digestLocalInputs(local: LocalInput[]): string {
  const hash = createHash('sha256');
  for (const input of [...local].sort((a, b) => a.source.localeCompare(b.source))) {
    hash.update(`${input.source}\0${createHash('sha256').update(input.data).digest('hex')}\n`);
  }
  return hash.digest('hex');
}

/** Everything that decides the image's bytes, hashed: 16 hex digits name its folder. */
function imageKey(packages: DebianPackage[], localDigest: string): string {
  const inputs = { builder: DEMO_GUEST_BUILDER_VERSION, arch: GUEST_ARCH, packages, localDigest, modules: GUEST_MODULES };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
}

interface BuildContext {
  buildDir: string;
  imagesDir: string;
  key: string;
  localDigest: string;
  local: LocalInput[];
  packages: DebianPackage[];
  signal: AbortSignal | undefined;
  logger: Logger;
  progress: (message: string) => void;
}

/** Fills the build folder with kernel, initrd and, last, the manifest. */
async function buildImage(context: BuildContext): Promise<void> {
  const { buildDir, packages, signal, logger, progress } = context;
  const [kernelPackage, ...userlandPackages] = packages;
  if (!kernelPackage) throw new Error('demo guest: no kernel package resolved');

  progress(`fetching ${packages.length} Debian packages: ${packages.map((pkg) => `${pkg.name} ${pkg.version}`).join(', ')}`);
  const debs = await downloadPackages(packages, join(context.imagesDir, DOWNLOAD_CACHE), {
    signal,
    logger,
    onDownload: (missing) => progress(`downloading ${missing.map((pkg) => pkg.name).join(', ')}${missing.includes(kernelPackage) ? ' (the kernel is about 70 MB)' : ''}`),
  });
  const debOf = (pkg: DebianPackage): string => {
    const path = debs.get(pkg.name);
    if (!path) throw new Error(`demo guest: ${pkg.name} was not downloaded`);
    return path;
  };

  progress('unpacking');
  const kernelTree = join(buildDir, 'kernel-package');
  const userland = join(buildDir, 'userland');
  await extractPackage(debOf(kernelPackage), kernelTree, { signal });
  for (const pkg of userlandPackages) await extractPackage(debOf(pkg), userland, { signal });
  throwIfAborted(signal, 'building the demo guest');

  const release = await kernelRelease(kernelTree, kernelPackage.name);
  const bzImage = await readFile(join(kernelTree, 'boot', `vmlinuz-${release}`)).catch((cause: unknown) => {
    throw new WarmvmError('E_GUEST_KERNEL', `${kernelPackage.name} has no boot/vmlinuz-${release}`, { hint: 'the Debian kernel package changed its layout: update the demo guest builder', cause });
  });

  progress('assembling the initramfs');
  const modules = await resolveModuleLoadOrder(join(kernelTree, 'lib/modules', release), GUEST_MODULES, signal);
  const source = (path: string): Buffer => {
    const found = context.local.find((input) => input.source === path);
    if (!found) throw new Error(`demo guest: ${path} was not read`);
    return found.data;
  };
  const entries = await demoRootfsEntries({
    userland,
    init: source(INIT_SCRIPT),
    workload: WORKLOAD_SCRIPTS.map((name) => ({ name, data: source(`docker/${name}`) })),
    modules,
    buildInfo: { key: context.key, kernelRelease: release, packages },
  });
  const initrd = await promisify(gzip)(writeNewc(entries), { level: 9 });
  await rm(userland, { recursive: true, force: true });
  await rm(kernelTree, { recursive: true, force: true });

  progress('decompressing the kernel');
  const pvh = await extractPvhKernel(bzImage, signal);
  if (pvh.vmlinux === undefined) logger.warn({ reason: pvh.reason }, 'booting the compressed kernel: about 3 s slower under TCG');
  const kernelFile = pvh.vmlinux ? 'vmlinux' : 'vmlinuz';
  await writeFile(join(buildDir, kernelFile), pvh.vmlinux ?? bzImage);
  await writeFile(join(buildDir, 'initrd.img'), initrd);

  const manifest: DemoGuestManifest = {
    key: context.key,
    builderVersion: DEMO_GUEST_BUILDER_VERSION,
    localDigest: context.localDigest,
    packages,
    kernelRelease: release,
    kernelFormat: pvh.vmlinux ? 'pvh-elf' : 'bzImage',
    modules: modules.map((module) => module.name),
    createdAt: new Date().toISOString(),
    kernel: { file: kernelFile, bytes: (await stat(join(buildDir, kernelFile))).size },
    initrd: { file: 'initrd.img', bytes: initrd.length },
  };
  await writeFile(join(buildDir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  // mkdtemp made it private; nothing in it is secret, and QEMU may run as another user.
  await chmod(buildDir, 0o755);
  logger.debug({ key: context.key, modules: manifest.modules, initrdBytes: initrd.length, kernelFormat: manifest.kernelFormat }, 'demo guest assembled');
}

async function kernelRelease(kernelTree: string, packageName: string): Promise<string> {
  const releases = await readdir(join(kernelTree, 'lib/modules')).catch(() => [] as string[]);
  const [release] = releases;
  if (releases.length !== 1 || release === undefined) {
    throw new WarmvmError('E_GUEST_KERNEL', `${packageName} holds ${releases.length} kernel releases under lib/modules, expected one`, {
      hint: 'the Debian kernel package changed its layout: update the demo guest builder',
    });
  }
  return release;
}
