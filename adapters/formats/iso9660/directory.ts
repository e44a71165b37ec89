import { writeBoth16, writeBoth32 } from './fields.js';
import type { Namespace } from './namespace.js';
import { SECTOR } from './sector.js';

// Directory records (ECMA-119 9.1): the root directory of each namespace, and the record of the
// root that each volume descriptor holds. A record never crosses a sector boundary.

const FLAG_DIRECTORY = 0x02;
const DOT_ID = Buffer.from([0x00]);
const DOTDOT_ID = Buffer.from([0x01]);
const DOT_RECORD_LENGTH = 34;

interface DirectoryRecord {
  extent: number;
  size: number;
  flags: number;
  id: Buffer;
  recorded: Buffer;
}

/** The bytes a record with identifier `id` takes. */
export function recordLength(id: Buffer): number {
  return 33 + id.length + (id.length % 2 === 0 ? 1 : 0); // the pad byte keeps records even-sized
}

/** Offsets of "." , ".." and then `lengths`, each record in one sector; and the sectors used. */
export function packRecords(lengths: readonly number[]): { offsets: number[]; sectors: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const length of [DOT_RECORD_LENGTH, DOT_RECORD_LENGTH, ...lengths]) {
    if ((at % SECTOR) + length > SECTOR) at += SECTOR - (at % SECTOR);
    offsets.push(at);
    at += length;
  }
  return { offsets, sectors: Math.ceil(at / SECTOR) };
}

/** The namespace's root directory: ".", "..", then a record for each file, at the offsets laid out. */
export function writeRootDirectory(image: Buffer, namespace: Namespace, recorded: Buffer): void {
  const base = namespace.rootSector * SECTOR;
  const [dotAt, dotdotAt, ...fileAt] = namespace.recordOffsets;
  writeRootRecord(image, base + dotAt!, namespace, recorded);
  // The root is its own parent.
  writeRootRecord(image, base + dotdotAt!, namespace, recorded, DOTDOT_ID);
  namespace.records.forEach(({ id, file }, index) => {
    writeDirectoryRecord(image, base + fileAt[index]!, { extent: file.extent, size: file.data.length, flags: 0, id, recorded });
  });
}

/** A record of the namespace's root directory: its "." unless told `id` (its ".."); a volume descriptor holds one too. */
export function writeRootRecord(image: Buffer, at: number, namespace: Namespace, recorded: Buffer, id: Buffer = DOT_ID): void {
  writeDirectoryRecord(image, at, { extent: namespace.rootSector, size: namespace.rootSectors * SECTOR, flags: FLAG_DIRECTORY, id, recorded });
}

function writeDirectoryRecord(image: Buffer, at: number, record: DirectoryRecord): void {
  image[at] = recordLength(record.id);
  image[at + 1] = 0; // extended attribute record length
  writeBoth32(image, at + 2, record.extent);
  writeBoth32(image, at + 10, record.size);
  record.recorded.copy(image, at + 18);
  image[at + 25] = record.flags;
  image[at + 26] = 0; // file unit size: not interleaved
  image[at + 27] = 0; // interleave gap
  writeBoth16(image, at + 28, 1); // volume sequence number
  image[at + 32] = record.id.length;
  record.id.copy(image, at + 33);
}
