import { randomBytes } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';
import { rename, rm, writeFile } from 'node:fs/promises';
import { WarmvmError } from '../../support/errors.js';
import { checkDate, recordingDate, volumeDescriptorDate } from './dates.js';
import { writeRootDirectory } from './directory.js';
import { layOut } from './layout.js';
import { checkFiles, checkLabel, type IsoOptions } from './options.js';
import { writePathTables } from './path-tables.js';
import { SECTOR } from './sector.js';
import { writeTerminator, writeVolumeDescriptor } from './volume-descriptors.js';

/**
 * A writer for ISO 9660 (ECMA-119) images with Joliet names, so that cloud-init NoCloud seeds and
 * small config disks need no genisoimage, mkisofs or xorriso on the host.
 *
 * In 2048-byte sectors: 16 zero sectors (system area), the volume descriptors at 16–18
 * (volume-descriptors.ts), then the path tables, root directories and file data (layout.ts). The
 * names each file gets in the primary and the Joliet namespace are in names.ts.
 */

const DEFAULT_CREATED_AT = new Date(Date.UTC(2000, 0, 1));

/** The image's bytes. Same options (and createdAt), same bytes, whatever the order of `files`. */
export function buildIso(options: IsoOptions): Buffer {
  const label = checkLabel(options.volumeLabel);
  const createdAt = checkDate(options.createdAt ?? DEFAULT_CREATED_AT);
  const { primary, joliet, files, volumeSectors } = layOut(checkFiles(options.files));
  if (volumeSectors * SECTOR > bufferConstants.MAX_LENGTH) {
    throw new WarmvmError('E_ISO_TOO_BIG', `ISO image: ${volumeSectors * SECTOR} bytes is more than Node can hold in one buffer`, {
      hint: 'put less data on the disk; this writer is for seed and config disks',
    });
  }

  const image = Buffer.alloc(volumeSectors * SECTOR);
  const recorded = recordingDate(createdAt);
  const volumeDate = volumeDescriptorDate(createdAt);
  for (const namespace of [primary, joliet]) {
    writePathTables(image, namespace);
    writeRootDirectory(image, namespace, recorded);
  }
  writeVolumeDescriptor(image, primary, { label, volumeSectors, recorded, volumeDate });
  writeVolumeDescriptor(image, joliet, { label, volumeSectors, recorded, volumeDate });
  writeTerminator(image);
  for (const file of files) if (file.data.length > 0) image.set(file.data, file.extent * SECTOR);
  return image;
}

/** Writes the image beside `path` and renames it into place, so readers never see half of it. */
export async function writeIsoFile(path: string, options: IsoOptions): Promise<void> {
  const image = buildIso(options);
  const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(temp, image, { flag: 'wx' });
    await rename(temp, path);
  } catch (cause) {
    await rm(temp, { force: true });
    throw new WarmvmError('E_ISO_WRITE', `ISO image: could not write ${path}: ${(cause as Error).message}`, {
      hint: 'check that its folder exists, is writable and has room',
      cause,
    });
  }
}
