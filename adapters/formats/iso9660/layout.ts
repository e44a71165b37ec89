import { WarmvmError } from '../../support/errors.js';
import { packRecords, recordLength } from './directory.js';
import { ucs2 } from './fields.js';
import { comparePrimary, mapPrimaryNames, primaryIdentifier } from './names.js';
import type { Namespace, PlacedFile } from './namespace.js';
import type { IsoFile } from './options.js';
import { SECTOR } from './sector.js';
import { FIRST_FREE_SECTOR } from './volume-descriptors.js';

/**
 * Where everything lies, in sectors after the volume descriptors: first for the primary names and
 * then for the Joliet names, a type-L path table, a type-M path table and the root directory; then
 * each file's data from the start of its own sector; then, if any file is empty, one zero sector
 * they all point at.
 *
 * Only a root directory: no subdirectories. It may span several sectors (a record never crosses a
 * sector boundary), up to MAX_ROOT_DIRECTORY_SECTORS (16) per namespace: 192 files with
 * 64-character names, 591 with 10-character ones. The bound is ours, not the format's: the
 * writer is for disks of a few files, and a call with thousands should fail early and clearly.
 */

/** The most sectors a namespace's root directory may take; more fails with E_ISO_ROOT_FULL. */
export const MAX_ROOT_DIRECTORY_SECTORS = 16;

/** Both namespaces, the files with their extents, and the sectors of the whole volume. */
export interface Layout {
  primary: Namespace;
  joliet: Namespace;
  files: PlacedFile[];
  volumeSectors: number;
}

/** The layout of `files`, checked and in Joliet order; see the module comment. */
export function layOut(files: readonly IsoFile[]): Layout {
  const placed: PlacedFile[] = files.map((file) => ({ name: file.name, data: file.data, extent: 0 }));
  const primaryIds = mapPrimaryNames(placed.map((file) => file.name));
  const primaryRecords = placed
    .map((file, index) => ({ file, ...primaryIds[index]! }))
    .sort(comparePrimary)
    .map(({ file, base, extension }) => ({ id: primaryIdentifier({ base, extension }), file }));
  const jolietRecords = placed.map((file) => ({ id: ucs2(file.name), file }));

  let next = FIRST_FREE_SECTOR;
  const layOutNamespace = (kind: Namespace['kind'], records: Namespace['records']): Namespace => {
    const { offsets, sectors } = packRecords(records.map((record) => recordLength(record.id)));
    if (sectors > MAX_ROOT_DIRECTORY_SECTORS) {
      throw new WarmvmError(
        'E_ISO_ROOT_FULL',
        `ISO image: the root directory would need ${sectors} sectors for the ${kind} names of its ${records.length} files, ` +
          `more than the ${MAX_ROOT_DIRECTORY_SECTORS} sectors (${(MAX_ROOT_DIRECTORY_SECTORS * SECTOR) / 1024} KiB) supported`,
        { hint: 'put fewer files on the disk or give them shorter names (192 files with 64-character names fit)' },
      );
    }
    const namespace = { kind, records, recordOffsets: offsets, rootSectors: sectors, lPathSector: next, mPathSector: next + 1, rootSector: next + 2 };
    next += 2 + sectors;
    return namespace;
  };
  const primary = layOutNamespace('primary', primaryRecords);
  const joliet = layOutNamespace('joliet', jolietRecords);

  for (const file of placed) {
    if (file.data.length === 0) continue;
    file.extent = next;
    next += Math.ceil(file.data.length / SECTOR);
  }
  // Empty files share one zero sector after all data (as genisoimage places them): extent 0 would
  // lie before the directories, which libarchive, reading a stream, skips as "out-of-order".
  if (placed.some((file) => file.data.length === 0)) {
    for (const file of placed) if (file.data.length === 0) file.extent = next;
    next += 1;
  }
  return { primary, joliet, files: placed, volumeSectors: next };
}
