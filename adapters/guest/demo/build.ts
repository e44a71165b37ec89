import { chmod, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../support/logger.js';
import { throwIfAborted, WarmvmError } from '../../support/errors.js';
import { downloadPackages, extractPackage, type DebianPackage } from '../debian-packages.js';
import { DEMO_GUEST_BUILDER_VERSION } from './key.js';
import { assembleInitramfs } from './initramfs.js';
import { extractPvhKernel } from './kernel-image.js';
import type { LocalInput } from './local-files.js';
import { downloadCacheDir } from './packages.js';
import { MANIFEST, type DemoGuestManifest } from './store.js';

// One build of the demo guest into its build folder: download, unpack, kernel, initramfs, manifest.

/** What one build works from and reports to. */
export interface BuildContext {
  buildDir: string;
  imagesDir: string;
  key: string;
  localDigest: string;
  local: LocalInput[];
  /** As resolvePackages gives them: the kernel first. */
  packages: DebianPackage[];
  signal: AbortSignal | undefined;
  logger: Logger;
  progress: (message: string) => void;
}

/** Fills the build folder with kernel, initrd and, last, the manifest. */
export async function buildImage(context: BuildContext): Promise<void> {
  const { buildDir, packages, signal, logger, progress } = context;
  const [kernelPackage, ...userlandPackages] = packages;
  if (!kernelPackage) throw new Error('demo guest: no kernel package resolved');

  progress(`fetching ${packages.length} Debian packages: ${packages.map((pkg) => `${pkg.name} ${pkg.version}`).join(', ')}`);
  const debs = await downloadPackages(packages, downloadCacheDir(context.imagesDir), {
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
    throw new WarmvmError('E_GUEST_KERNEL', `${kernelPackage.name} has no boot/vmlinuz-${release}`, {
      hint: 'the Debian kernel package changed its layout: update the demo guest builder',
      cause,
    });
  });

  progress('assembling the initramfs');
  const { initrd, modules } = await assembleInitramfs({ kernelTree, release, userland, local: context.local, key: context.key, packages, signal });
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
