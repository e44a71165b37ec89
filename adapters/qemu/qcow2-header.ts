import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
/** QEMU caps a backing file name at 1023 bytes. */
const MAX_BACKING_NAME = 1023;

/**
 * The backing file a qcow2 image names, resolved as QEMU does (relative to the image's folder);
 * undefined for a standalone image or a file that is not qcow2. Reads the header only, so it is
 * cheap enough to run over every overlay warmvm keeps.
 */
export async function readBackingFile(path: string): Promise<string | undefined> {
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(20);
    const { bytesRead } = await file.read(header, 0, header.length, 0);
    if (bytesRead < header.length || header.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
    const offset = header.readBigUInt64BE(8);
    const size = header.readUInt32BE(16);
    if (offset === 0n || size === 0 || size > MAX_BACKING_NAME) return undefined;
    const name = Buffer.alloc(size);
    const read = await file.read(name, 0, size, Number(offset));
    if (read.bytesRead < size) return undefined;
    return resolve(dirname(path), name.toString('utf8'));
  } finally {
    await file.close();
  }
}
