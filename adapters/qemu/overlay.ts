import { execFile } from 'node:child_process';
import { WarmvmError } from '../support/errors.js';
import { removeRuntimeFiles } from './process.js';

export interface OverlayOptions {
  qemuImg: string;
  /** The image below: the user's disk, the profile's disk, or a snapshot's frozen disk. */
  base: string;
  format: 'qcow2' | 'raw';
  overlay: string;
  signal?: AbortSignal;
}

/**
 * A fresh qcow2 overlay over `base`, replacing any old one: what the guest writes never reaches the
 * image below. Node's own execFile rather than execa: this runs on every resume of a disk guest,
 * and loading execa costs about 150 ms.
 */
export async function createOverlay(options: OverlayOptions): Promise<void> {
  const { qemuImg, base, format, overlay, signal } = options;
  await removeRuntimeFiles([overlay]);
  await runQemuImg(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', format, '-b', base, overlay], signal, `cannot create a disk overlay over ${base}`, base, format);
}

/**
 * Points an overlay at another copy of its backing file, header only (`rebase -u`): the data
 * below is the same image, found at another path on this host (an imported snapshot's disk).
 */
export async function rebaseOverlay(options: Omit<OverlayOptions, 'qemuImg'> & { qemuImg?: string }): Promise<void> {
  const { base, format, overlay, signal } = options;
  await runQemuImg(
    options.qemuImg ?? 'qemu-img',
    ['rebase', '-u', '-f', 'qcow2', '-F', format, '-b', base, overlay],
    signal,
    `cannot point the disk ${overlay} at ${base}`,
    base,
    format,
  );
}

async function runQemuImg(qemuImg: string, args: string[], signal: AbortSignal | undefined, failed: string, base: string, format: string): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      const child = execFile(qemuImg, args, { signal }, (error, _stdout, stderr) => {
        if (error) reject(Object.assign(error, { stderr: String(stderr) }));
        else resolve();
      });
      child.stdin?.end();
    });
  } catch (cause) {
    const said = String((cause as { stderr?: unknown }).stderr ?? '')
      .trim()
      .split('\n')[0];
    throw new WarmvmError('E_OVERLAY', `${failed}${said ? `: ${said}` : ''}`, {
      hint: `check that qemu-img is installed (apt-get install qemu-utils) and that ${base} is a readable ${format} image`,
      cause,
    });
  }
}
