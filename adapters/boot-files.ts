import { stat } from 'node:fs/promises';
import { loadExeca } from './lazy-execa.js';
import type { Logger } from 'pino';
import { ensureDemoGuest } from './demo-guest.js';
import { WarmvmError } from './errors.js';
import { removeRuntimeFiles } from './qemu-process.js';
import type { BootSource } from './vm-spec.js';

export interface BootFiles {
  kernel: string | undefined;
  initrd: string | undefined;
  append: string | undefined;
  disk: { path: string; format: 'qcow2' | 'raw' } | undefined;
  /** Which image, for the trace and the output. */
  description: string;
  built: boolean;
}

export interface BootFilesOptions {
  imagesDir: string;
  /** Where a disk guest's fresh overlay goes: the user's image is never written. */
  overlay: string;
  qemuImg: string;
  signal?: AbortSignal;
  logger?: Logger;
  onProgress?: (line: string) => void;
}

/** Kernel command line of the demo guest: serial console, quiet enough to boot fast under TCG. */
export const DEMO_APPEND = 'console=ttyS0 quiet panic=-1';

/** Resolves what QEMU boots: the demo guest (built when missing), a kernel, or a disk with a fresh overlay. */
export async function prepareBootFiles(source: BootSource, options: BootFilesOptions): Promise<BootFiles> {
  if (source.kind === 'demo') {
    const guest = await ensureDemoGuest({ imagesDir: options.imagesDir, signal: options.signal, logger: options.logger, onProgress: options.onProgress });
    return { kernel: guest.kernel, initrd: guest.initrd, append: DEMO_APPEND, disk: undefined, description: `demo-${guest.key}`, built: guest.built };
  }
  if (source.kind === 'kernel') {
    await mustExist(source.kernel, 'image.kernel');
    if (source.initrd) await mustExist(source.initrd, 'image.initrd');
    return { kernel: source.kernel, initrd: source.initrd, append: source.append ?? 'console=ttyS0', disk: undefined, description: source.kernel, built: false };
  }
  await mustExist(source.path, 'image.disk');
  if (source.kernel) await mustExist(source.kernel, 'image.kernel');
  if (source.initrd) await mustExist(source.initrd, 'image.initrd');
  await removeRuntimeFiles([options.overlay]);
  try {
    const execa = await loadExeca();
    await execa(options.qemuImg, ['create', '-q', '-f', 'qcow2', '-F', source.format, '-b', source.path, options.overlay], { cancelSignal: options.signal, stdin: 'ignore' });
  } catch (cause) {
    throw new WarmvmError('E_OVERLAY', `cannot create a disk overlay over ${source.path}`, {
      hint: 'check that qemu-img is installed (apt-get install qemu-utils) and that the image is a valid ' + source.format,
      cause,
    });
  }
  return {
    kernel: source.kernel,
    initrd: source.initrd,
    append: source.append,
    disk: { path: options.overlay, format: 'qcow2' },
    description: source.path,
    built: false,
  };
}

async function mustExist(path: string, field: string): Promise<void> {
  const found = await stat(path).catch(() => undefined);
  if (!found?.isFile()) {
    throw new WarmvmError('E_IMAGE_MISSING', `the config's ${field} ${path} does not exist or is not a file`, { hint: `fix ${field} in the config` });
  }
}
