import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../support/logger.js';
import { aptStateFingerprint, resolveCandidateVersions, resolveDependencyName, type DebianPackage } from '../debian-packages.js';
import { DEMO_GUEST_BUILDER_VERSION } from './key.js';

// Which Debian packages the demo guest is built from, and where they are kept between builds.

const KERNEL_METAPACKAGE = 'linux-image-amd64';
const KERNEL_PACKAGE = /^linux-image-\d.*-amd64$/;
const USERLAND_PACKAGES = ['busybox-static', 'qemu-guest-agent'];
/**
 * What bookworm's qemu-ga loads, all the way down. Not its "Depends": those drag in perl (through
 * init-system-helpers) and libraries it never loads. The build follows DT_NEEDED from qemu-ga and
 * fails naming any library none of these packages ships.
 */
const AGENT_LIBRARY_PACKAGES = ['libc6', 'libglib2.0-0', 'libpcre2-8-0', 'libnuma1', 'libudev1', 'liburing2'];

const DOWNLOAD_CACHE = '.debian-packages';
const RESOLUTION_MEMO = '.demo-packages.json';

/** The folder beside the images where downloaded packages are kept between builds. */
export function downloadCacheDir(imagesDir: string): string {
  return join(imagesDir, DOWNLOAD_CACHE);
}

/**
 * The exact Debian package versions apt would use now, the kernel first: the kernel behind the
 * metapackage, userland, libraries. Remembered beside the images together with a fingerprint of
 * apt's index, and reused while that fingerprint holds (after "apt-get update" it changes and apt
 * is asked again).
 */
export async function resolvePackages(imagesDir: string, options: { signal: AbortSignal | undefined; logger: Logger }): Promise<DebianPackage[]> {
  const memoFile = join(imagesDir, RESOLUTION_MEMO);
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({ apt: await aptStateFingerprint(), builder: DEMO_GUEST_BUILDER_VERSION, wanted: [KERNEL_METAPACKAGE, ...USERLAND_PACKAGES, ...AGENT_LIBRARY_PACKAGES] }),
    )
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
    value.every(
      (item: unknown) => typeof item === 'object' && item !== null && typeof (item as DebianPackage).name === 'string' && typeof (item as DebianPackage).version === 'string',
    )
  );
}
