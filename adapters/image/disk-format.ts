import { open } from 'node:fs/promises';
import { WarmvmError } from '../support/errors.js';
import { readBackingFile } from '../qemu/qcow2-header.js';

/** The first bytes of what a downloaded file may be instead of the disk the config says. */
const MAGICS: { name: string; bytes: Buffer }[] = [
  { name: 'qcow2', bytes: Buffer.from([0x51, 0x46, 0x49, 0xfb]) },
  { name: 'xz-compressed', bytes: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { name: 'zstd-compressed', bytes: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) },
  { name: 'gzip-compressed', bytes: Buffer.from([0x1f, 0x8b]) },
];

/**
 * Refuses a file that is not what `image.format` says, before QEMU reads it: a qcow2 must begin
 * with its magic and stand alone (a backing file named inside a downloaded image would make QEMU
 * open a file of this host); a raw disk must be neither a qcow2 nor still compressed.
 */
export async function checkDiskFormat(path: string, format: 'qcow2' | 'raw', shown: string): Promise<void> {
  const head = Buffer.alloc(8);
  const file = await open(path, 'r');
  let bytesRead: number;
  try {
    ({ bytesRead } = await file.read(head, 0, head.length, 0));
  } finally {
    await file.close();
  }
  const found = MAGICS.find((magic) => bytesRead >= magic.bytes.length && head.subarray(0, magic.bytes.length).equals(magic.bytes))?.name;
  const wrong = (what: string, hint: string) => new WarmvmError('E_IMAGE_FORMAT', `the image ${shown} ${what}`, { hint });
  if (found === 'qcow2' && format === 'qcow2') {
    const backing = await readBackingFile(path);
    if (backing !== undefined) throw wrong(`is a qcow2 overlay over a backing file (${backing})`, 'serve a standalone image: qemu-img convert -O qcow2 IN OUT makes one');
    return;
  }
  if (found === 'qcow2') throw wrong('is a qcow2 image, where image.format says raw', 'set image.format to "qcow2"');
  if (found !== undefined)
    throw wrong(
      `is ${found}, after ${found.startsWith('gzip') ? 'the download' : 'what image.compression asked'}`,
      'set image.compression to how the file is packed ("xz" or "zstd"); gzip is not taken: serve it uncompressed, or as xz or zstd',
    );
  if (format === 'qcow2') throw wrong('is not a qcow2 image (it does not begin with QFI\\xfb)', 'if it is a raw disk image, set image.format to "raw"');
  if (bytesRead === 0) throw wrong('is empty', 'check image.url: it names an empty file');
}
