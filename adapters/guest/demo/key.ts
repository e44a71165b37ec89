import { createHash } from 'node:crypto';
import { GUEST_ARCH, type DebianPackage } from '../debian-packages.js';

/** Bump when the build changes in a way the inputs' hash cannot see (layout, cpio writer, kernel handling). */
export const DEMO_GUEST_BUILDER_VERSION = 1;

/** Leaves only: their dependencies (virtio, virtio_ring, failover, …) are read from the modules themselves. */
export const GUEST_MODULES = ['virtio_pci', 'virtio_console', 'virtio_net'];

/** The image's key: a hash of every input, so a cached image is found without loading the builder. */
export function imageKey(packages: DebianPackage[], localDigest: string): string {
  const inputs = { builder: DEMO_GUEST_BUILDER_VERSION, arch: GUEST_ARCH, packages, localDigest, modules: GUEST_MODULES };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
}
