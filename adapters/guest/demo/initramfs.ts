import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { writeNewc } from '../../formats/cpio.js';
import type { DebianPackage } from '../debian-packages.js';
import { resolveModuleLoadOrder, type KernelModule } from './kernel-modules.js';
import { GUEST_MODULES } from './key.js';
import { INIT_SCRIPT, localFile, WORKLOAD_SCRIPTS, type LocalInput } from './local-files.js';
import { demoRootfsEntries } from './rootfs.js';

/** The unpacked packages and local files an initramfs is assembled from. */
export interface InitramfsInputs {
  /** The kernel package unpacked: its modules are under lib/modules/<release>. */
  kernelTree: string;
  release: string;
  /** The userland and library packages unpacked together. */
  userland: string;
  local: LocalInput[];
  /** For /etc/warmvm/build.json. */
  key: string;
  packages: DebianPackage[];
  signal: AbortSignal | undefined;
}

/** The gzipped newc initrd (busybox, the agent, the workload, the drivers) and the modules it loads, in load order. */
export async function assembleInitramfs(inputs: InitramfsInputs): Promise<{ initrd: Buffer; modules: KernelModule[] }> {
  const modules = await resolveModuleLoadOrder(join(inputs.kernelTree, 'lib/modules', inputs.release), GUEST_MODULES, inputs.signal);
  const entries = await demoRootfsEntries({
    userland: inputs.userland,
    init: localFile(inputs.local, INIT_SCRIPT),
    workload: WORKLOAD_SCRIPTS.map((name) => ({ name, data: localFile(inputs.local, `docker/${name}`) })),
    modules,
    buildInfo: { key: inputs.key, kernelRelease: inputs.release, packages: inputs.packages },
  });
  const initrd = await promisify(gzip)(writeNewc(entries), { level: 9 });
  return { initrd, modules };
}
