import { volumeDescriptorDate } from './dates.js';
import { writeRootRecord } from './directory.js';
import { asciiField, ucs2Field, writeBoth16, writeBoth32 } from './fields.js';
import type { Namespace } from './namespace.js';
import { PATH_TABLE_SIZE } from './path-tables.js';
import { SECTOR } from './sector.js';

// Volume descriptors (ECMA-119 8), after the 16 zero sectors of the system area: the Primary
// Volume Descriptor at 16, the Joliet Supplementary Volume Descriptor (escape sequence "%/E":
// UCS-2 level 3) at 17, the Volume Descriptor Set Terminator at 18.

const PVD_SECTOR = 16;
const SVD_SECTOR = 17;
const TERMINATOR_SECTOR = 18;
const APPLICATION_ID = 'WARMVM';

/** The first sector after the descriptors: where the layout starts. */
export const FIRST_FREE_SECTOR = TERMINATOR_SECTOR + 1;

/** What both descriptors record of the whole volume. */
export interface VolumeFields {
  label: string;
  volumeSectors: number;
  recorded: Buffer;
  volumeDate: Buffer;
}

/** The namespace's descriptor: the primary one for the primary names, the Joliet one for the Joliet names. */
export function writeVolumeDescriptor(image: Buffer, namespace: Namespace, fields: VolumeFields): void {
  const joliet = namespace.kind === 'joliet';
  const sector = joliet ? SVD_SECTOR : PVD_SECTOR;
  const at = sector * SECTOR;
  const text = (value: string, offset: number, length: number): void => {
    (joliet ? ucs2Field : asciiField)(value, length).copy(image, at + offset);
  };
  writeDescriptorHeader(image, sector, joliet ? 2 : 1);
  text('', 8, 32); // system identifier
  text(fields.label, 40, 32);
  writeBoth32(image, at + 80, fields.volumeSectors);
  if (joliet) image.write('%/E', at + 88, 'ascii'); // UCS-2 level 3
  writeBoth16(image, at + 120, 1); // volume set size
  writeBoth16(image, at + 124, 1); // volume sequence number
  writeBoth16(image, at + 128, SECTOR); // logical block size
  writeBoth32(image, at + 132, PATH_TABLE_SIZE);
  image.writeUInt32LE(namespace.lPathSector, at + 140);
  image.writeUInt32BE(namespace.mPathSector, at + 148);
  writeRootRecord(image, at + 156, namespace, fields.recorded);
  text('', 190, 128); // volume set identifier
  text('', 318, 128); // publisher
  text('', 446, 128); // data preparer
  text(APPLICATION_ID, 574, 128);
  text('', 702, 37); // copyright file
  text('', 739, 37); // abstract file
  text('', 776, 37); // bibliographic file
  fields.volumeDate.copy(image, at + 813); // creation
  fields.volumeDate.copy(image, at + 830); // modification
  volumeDescriptorDate(undefined).copy(image, at + 847); // expiration: none
  volumeDescriptorDate(undefined).copy(image, at + 864); // effective: at once
  image[at + 881] = 1; // file structure version
}

/** The Volume Descriptor Set Terminator, which ends the descriptors. */
export function writeTerminator(image: Buffer): void {
  writeDescriptorHeader(image, TERMINATOR_SECTOR, 255);
}

function writeDescriptorHeader(image: Buffer, sector: number, type: number): void {
  const at = sector * SECTOR;
  image[at] = type;
  image.write('CD001', at + 1, 'ascii');
  image[at + 6] = 1; // version
}
