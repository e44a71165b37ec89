import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../../support/logger.js';
import { removeAbandonedBuildDirs } from '../abandoned-builds.js';
import { reportProgress } from '../progress.js';
import { configureRootfs, debootstrap, DEBIAN_PACKAGES, DEBIAN_SUITE, findBootFiles, unmountUnder, WORKLOAD_FILES } from './rootfs.js';
import { throwIfAborted, WarmvmError } from '../../support/errors.js';
import { provisionGuest } from './provision.js';
import { writeIsoFile } from '../../formats/iso9660/image.js';
import { loadExeca } from '../../support/lazy-execa.js';
import { moduleLogger, silentLogger } from '../../support/logger.js';
import { projectRoot } from '../../support/project-root.js';
import { withReadableFiles } from '../../support/umask.js';
import { inspectQemuCached } from '../../qemu/binary.js';
import { removeStaleImages, type StaleImages } from '../stale-images.js';

/**
 * warmvm's Debian profile: Debian 12 from debootstrap (systemd, cloud-init, the guest agent,
 * docker.io), an ext4 image made with `mkfs.ext4 -d` (no mount), converted to qcow2, booted once
 * with its own kernel and a cloud-init seed to provision the workload container, converted again
 * into compressed clusters (guests only read it: writes go to overlays), and cached in
 * `<imagesDir>/debian-<key>/` where the key hashes every input: the package list, the cloud-init
 * templates, the workload's files and this builder's version. `base.qcow2` beside it is the same
 * Debian before that first boot (cloud-init on, never booted): a plain cloud image to give your own
 * user-data. A new build removes older images no instance or snapshot still backs onto.
 */

/** Bump when the build changes in a way the inputs' hash cannot see. */
export const DEBIAN_GUEST_BUILDER_VERSION = 4;
/** root= by device: the disk is always the first virtio-blk. apparmor=0: docker refuses to run a container when AppArmor is on without its parser (not installed). net.ifnames=0: the NIC is eth0 whatever PCI slot it gets (a start adds the settings disk the provisioning boot lacked), so the network cloud-init configured still matches. */
export const DEBIAN_APPEND = 'root=/dev/vda rw console=ttyS0 quiet apparmor=0 net.ifnames=0';
export const PROVISIONED_MARKER = 'warmvm: provisioned';

const PREFIX = 'debian-';
const BUILD_PREFIX = '.debian-build-';
const MANIFEST = 'manifest.json';
const DEBOOTSTRAP_CACHE = '.debian-debs';
/** Room for docker's image and container layers beyond the packages (the raw image is sparse). */
const DISK_SIZE = '4G';
const PROVISION_MEMORY_MB = 2048;
const PROVISION_CPUS = 2;

export interface DebianGuest {
  key: string;
  disk: string;
  /** The image before provisioning: Debian 12 with cloud-init enabled, never booted; undefined in an image that came with a pulled snapshot. */
  base: string | undefined;
  kernel: string;
  initrd: string;
  built: boolean;
}

interface Manifest {
  key: string;
  builderVersion: number;
  suite: string;
  packages: string[];
  kernelRelease: string;
  provisionSeconds: number;
  createdAt: string;
  files: Record<'disk' | 'base' | 'kernel' | 'initrd', { file: string; bytes: number }>;
}

export interface EnsureDebianGuestOptions {
  imagesDir: string;
  force?: boolean;
  signal?: AbortSignal;
  logger?: Logger;
  onProgress?: (line: string) => void;
}

/** The folder under `images/` the Debian profile of these inputs lives in (built or not), without building it. */
export async function debianGuestDir(): Promise<string> {
  return PREFIX + buildKey(await readTemplates());
}

/** The Debian profile's image, built on first use (a few minutes: debootstrap, then a provisioning boot). */
export async function ensureDebianGuest(options: EnsureDebianGuestOptions): Promise<DebianGuest> {
  const logger = moduleLogger(options.logger ?? silentLogger, 'debian-guest');
  const progress = reportProgress(logger, options.onProgress);
  const { imagesDir, signal } = options;
  const templates = await readTemplates();
  const key = buildKey(templates);
  const imageDir = join(imagesDir, PREFIX + key);
  if (!options.force) {
    const cached = await readImage(imageDir, key);
    if (cached) return cached;
  }
  await mkdir(imagesDir, { recursive: true });
  await removeAbandonedBuildDirs(imagesDir, BUILD_PREFIX, unmountUnder);
  const started = Date.now();
  const buildDir = await mkdtemp(join(imagesDir, `${BUILD_PREFIX}${process.pid}-`));
  try {
    // The root file system's modes are its users' permissions inside the guest.
    const manifest = await withReadableFiles(() => build(buildDir, key, templates, { imagesDir, signal, progress }));
    throwIfAborted(signal, 'building the Debian guest');
    await writeFile(join(buildDir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    const old = `${buildDir}.old`;
    await rename(imageDir, old).catch(() => undefined);
    await rename(buildDir, imageDir);
    await rm(old, { recursive: true, force: true });
    progress(`Debian guest ${key} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const image = await readImage(imageDir, key);
    if (!image)
      throw new WarmvmError('E_GUEST_PUBLISH', `the Debian guest in ${imageDir} is incomplete right after building it`, {
        hint: 'run "warmvm guest build --profile debian --force"',
      });
    await removeOldImages(imagesDir, PREFIX + key, progress, logger);
    return { ...image, built: true };
  } finally {
    await unmountUnder(buildDir);
    await rm(buildDir, { recursive: true, force: true });
  }
}

/**
 * Each image takes about 2 GB; older ones go once nothing backs onto them. A failure here leaves
 * them for the next build and does not fail this one. The images folder is always `<home>/images`.
 */
async function removeOldImages(imagesDir: string, current: string, progress: (line: string) => void, logger: Logger): Promise<void> {
  let stale: StaleImages;
  try {
    stale = await removeStaleImages(dirname(imagesDir), PREFIX, current);
  } catch (error) {
    logger.warn({ err: error }, 'could not remove older Debian guests; the next build tries again');
    return;
  }
  for (const image of stale.removed) progress(`removed the older Debian guest ${image}`);
  for (const { image, usedBy, instance } of stale.kept) {
    progress(`kept the older Debian guest ${image}: ${usedBy} backs onto it ("warmvm reset --name ${instance} --snapshot" frees it for the next build)`);
  }
}

interface Templates {
  userData: Buffer;
  metaData: Buffer;
  workload: Buffer[];
}

async function readTemplates(): Promise<Templates> {
  const root = projectRoot();
  return {
    userData: await readFile(join(root, 'cloud-init', 'user-data')),
    metaData: await readFile(join(root, 'cloud-init', 'meta-data')),
    workload: await Promise.all(WORKLOAD_FILES.map((file) => readFile(join(root, 'docker', file)))),
  };
}

function buildKey(templates: Templates): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ builder: DEBIAN_GUEST_BUILDER_VERSION, suite: DEBIAN_SUITE, packages: DEBIAN_PACKAGES, append: DEBIAN_APPEND }));
  for (const part of [templates.userData, templates.metaData, ...templates.workload]) hash.update(createHash('sha256').update(part).digest());
  return hash.digest('hex').slice(0, 16);
}

async function build(
  buildDir: string,
  key: string,
  templates: Templates,
  context: { imagesDir: string; signal?: AbortSignal; progress: (line: string) => void },
): Promise<Manifest> {
  const { signal, progress } = context;
  const execa = await loadExeca();
  const rootfs = join(buildDir, 'rootfs');
  progress(`debootstrap: Debian ${DEBIAN_SUITE} with ${DEBIAN_PACKAGES.join(', ')} (about 2 min)`);
  await debootstrap(rootfs, { signal, cacheDir: join(context.imagesDir, DEBOOTSTRAP_CACHE), onLine: (line) => progress(`debootstrap: ${line}`) });
  await configureRootfs(rootfs, { signal });
  const boot = await findBootFiles(rootfs);
  await copyFile(boot.kernel, join(buildDir, 'vmlinuz'));
  await copyFile(boot.initrd, join(buildDir, 'initrd.img'));

  progress(`ext4 image (${DISK_SIZE}, sparse) filled from the tree, then qcow2`);
  const raw = join(buildDir, 'disk.raw');
  await execa('mkfs.ext4', ['-q', '-F', '-d', rootfs, '-L', 'root', raw, DISK_SIZE], { cancelSignal: signal, stdin: 'ignore' });
  await rm(rootfs, { recursive: true, force: true });
  await execa('qemu-img', ['convert', '-O', 'qcow2', raw, join(buildDir, 'base.qcow2')], { cancelSignal: signal, stdin: 'ignore' });
  await rm(raw, { force: true });
  // A copy, not an overlay: the profile's own disk stays one file, as a user's image would be.
  await copyFile(join(buildDir, 'base.qcow2'), join(buildDir, 'disk.qcow2'));

  const seedIso = join(buildDir, 'seed.iso');
  await writeIsoFile(seedIso, {
    volumeLabel: 'cidata',
    files: [
      { name: 'user-data', data: templates.userData },
      { name: 'meta-data', data: templates.metaData },
    ],
  });
  const qemu = await inspectQemuCached(join(context.imagesDir, '..', 'qemu-info.json'), undefined, signal);
  progress('provisioning boot: cloud-init imports and starts the workload container, then powers off (a few minutes under TCG)');
  const work = join(buildDir, 'provision');
  await mkdir(work);
  let provisioned: { seconds: number };
  try {
    provisioned = await provisionGuest({
      binary: qemu.binary,
      machineType: qemu.machineType,
      kernel: join(buildDir, 'vmlinuz'),
      initrd: join(buildDir, 'initrd.img'),
      append: DEBIAN_APPEND,
      disk: join(buildDir, 'disk.qcow2'),
      seedIso,
      workDir: work,
      memoryMb: PROVISION_MEMORY_MB,
      cpus: PROVISION_CPUS,
      doneMarker: PROVISIONED_MARKER,
      boundMs: Number(process.env.WARMVM_PROVISION_SECONDS ?? 1200) * 1000,
      signal,
      onProgress: (line) => progress(line),
    });
  } catch (error) {
    // Kept for a person to read: the build folder goes away.
    const kept = join(context.imagesDir, 'debian-provision-failed.serial.log');
    await copyFile(join(work, 'serial.log'), kept).catch(() => undefined);
    if (error instanceof WarmvmError) error.message += `\nthe serial log is kept at ${kept}`;
    throw error;
  }
  await rm(work, { recursive: true, force: true });
  await rm(seedIso, { force: true });
  progress(`provisioned in ${provisioned.seconds.toFixed(0)} s`);
  // Compressed clusters, which QEMU reads as they are: a snapshot carries this file as it is, so
  // a pull has nothing to unpack (3.4 s for this disk as a zstd layer), and it is a third of the size.
  progress('disk.qcow2 with zstd-compressed clusters');
  const packed = join(buildDir, 'disk.packed.qcow2');
  await execa('qemu-img', ['convert', '-c', '-f', 'qcow2', '-O', 'qcow2', '-o', 'compression_type=zstd', join(buildDir, 'disk.qcow2'), packed], {
    cancelSignal: signal,
    stdin: 'ignore',
  });
  await rename(packed, join(buildDir, 'disk.qcow2'));
  const record = async (file: string) => ({ file, bytes: (await stat(join(buildDir, file))).size });
  return {
    key,
    builderVersion: DEBIAN_GUEST_BUILDER_VERSION,
    suite: DEBIAN_SUITE,
    packages: [...DEBIAN_PACKAGES],
    kernelRelease: boot.release,
    provisionSeconds: provisioned.seconds,
    createdAt: new Date().toISOString(),
    files: { disk: await record('disk.qcow2'), base: await record('base.qcow2'), kernel: await record('vmlinuz'), initrd: await record('initrd.img') },
  };
}

async function readImage(imageDir: string, key: string): Promise<DebianGuest | undefined> {
  let manifest: Partial<Manifest>;
  try {
    manifest = JSON.parse(await readFile(join(imageDir, MANIFEST), 'utf8')) as Partial<Manifest>;
  } catch {
    return undefined;
  }
  if (manifest.key !== key || !manifest.files) return undefined;
  const present = async (entry: { file: string; bytes: number }): Promise<boolean> => {
    const found = await stat(join(imageDir, entry.file)).catch(() => undefined);
    return found?.isFile() === true && found.size === entry.bytes;
  };
  const { disk, base, kernel, initrd } = manifest.files;
  for (const entry of [disk, kernel, initrd]) if (!entry || !(await present(entry))) return undefined;
  // The unprovisioned base does not travel with a snapshot (nothing resumed boots from it): an image without it is whole.
  const hasBase = base !== undefined && (await present(base));
  return {
    key,
    disk: join(imageDir, disk.file),
    base: hasBase ? join(imageDir, base.file) : undefined,
    kernel: join(imageDir, kernel.file),
    initrd: join(imageDir, initrd.file),
    built: false,
  };
}
