/**
 * A writer for ISO 9660 (ECMA-119) images with Joliet names, so that cloud-init NoCloud seeds and
 * small config disks need no genisoimage, mkisofs or xorriso on the host.
 *
 * Layout, in 2048-byte sectors: 16 zero sectors (system area); the Primary Volume Descriptor at
 * 16; the Joliet Supplementary Volume Descriptor (escape sequence "%/E": UCS-2 level 3) at 17; the
 * Volume Descriptor Set Terminator at 18; then, first for the primary names and then for the
 * Joliet names, a type-L path table, a type-M path table and the root directory; then each file's
 * data from the start of its own sector; then, if any file is empty, one zero sector they all
 * point at.
 *
 * Only a root directory: no subdirectories. It may span several sectors (a record never crosses a
 * sector boundary), up to MAX_ROOT_DIRECTORY_SECTORS (16) per namespace: 192 files with
 * 64-character names, 591 with 10-character ones. The bound is ours, not the format's: the
 * writer is for disks of a few files, and a call with thousands should fail early and clearly.
 *
 * Names: the Joliet record holds the name as given (what Linux shows, since it prefers Joliet):
 * 1–64 UCS-2 units, none of `/ \ : ; * ? " < > |` or control characters, not `.` or `..`, not
 * ending in `.` (Linux drops trailing dots), unique. The primary record holds a level-1 name: ASCII
 * letters uppercased, every other character but A–Z 0–9 _ turned into `_`, split at the last `.`
 * (a leading dot does not count) into a name cut to 8 and an extension cut to 3, written
 * `NAME.EXT;1` ("user-data" → `USER_DAT.;1`, "meta.json" → `META.JSO;1`). When several files
 * map to one name, the one whose Joliet name sorts first keeps it and each other one gets `_N` in
 * the last places of its name part (`USER_D_1.;1`), N the smallest number giving a name no file
 * has; so the mapping does not depend on the order the files are given in, nor does the image.
 */
import { randomBytes } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';
import { rename, rm, writeFile } from 'node:fs/promises';
import { WarmvmError } from '../support/errors.js';

export interface IsoFile {
  name: string;
  data: Uint8Array;
}

export interface IsoOptions {
  /** 1–16 printable ASCII characters without spaces, written as given into both descriptors. */
  volumeLabel: string;
  files: readonly IsoFile[];
  /** Every date in the image; a fixed default keeps builds reproducible. */
  createdAt?: Date;
}

const SECTOR = 2048;
export const MAX_ROOT_DIRECTORY_SECTORS = 16;
const MAX_JOLIET_NAME_UNITS = 64;
const MAX_LABEL_LENGTH = 16;
const MAX_FILE_SIZE = 0xffffffff; // one extent, and the record's 32-bit data length
const DEFAULT_CREATED_AT = new Date(Date.UTC(2000, 0, 1));
const APPLICATION_ID = 'WARMVM';

const PVD_SECTOR = 16;
const SVD_SECTOR = 17;
const TERMINATOR_SECTOR = 18;
const FIRST_FREE_SECTOR = 19;

const FLAG_DIRECTORY = 0x02;
const DOT_ID = Buffer.from([0x00]);
const DOTDOT_ID = Buffer.from([0x01]);
const DOT_RECORD_LENGTH = 34;
const PATH_TABLE_SIZE = 10; // the root's entry only: 8 bytes, a 1-byte identifier and a pad byte
const FORBIDDEN_NAME_CHARACTERS = new Set(['/', '\\', ':', ';', '*', '?', '"', '<', '>', '|']);

interface Namespace {
  kind: 'primary' | 'joliet';
  /** Identifiers in the directory's order, with the file each one names. */
  records: { id: Buffer; file: PlacedFile }[];
  recordOffsets: number[];
  rootSectors: number;
  lPathSector: number;
  mPathSector: number;
  rootSector: number;
}

interface PlacedFile {
  name: string;
  data: Uint8Array;
  extent: number;
}

/** The image's bytes. Same options (and createdAt), same bytes, whatever the order of `files`. */
export function buildIso(options: IsoOptions): Buffer {
  const label = checkLabel(options.volumeLabel);
  const createdAt = checkDate(options.createdAt ?? DEFAULT_CREATED_AT);
  const files = checkFiles(options.files);

  const placed: PlacedFile[] = files.map((file) => ({ name: file.name, data: file.data, extent: 0 }));
  const primaryIds = mapPrimaryNames(placed.map((file) => file.name));
  const primaryRecords = placed
    .map((file, index) => ({ file, ...primaryIds[index]! }))
    .sort(comparePrimary)
    .map(({ file, base, extension }) => ({ id: Buffer.from(`${base}.${extension};1`, 'ascii'), file }));
  const jolietRecords = placed.map((file) => ({ id: ucs2(file.name), file }));

  let next = FIRST_FREE_SECTOR;
  const layOut = (kind: Namespace['kind'], records: Namespace['records']): Namespace => {
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
  const primary = layOut('primary', primaryRecords);
  const joliet = layOut('joliet', jolietRecords);

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
  const volumeSectors = next;
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
  writeDescriptorHeader(image, TERMINATOR_SECTOR, 255);
  for (const file of placed) if (file.data.length > 0) image.set(file.data, file.extent * SECTOR);
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

function checkLabel(label: string): string {
  if (typeof label !== 'string' || !/^[\x21-\x7e]{1,16}$/.test(label)) {
    throw new WarmvmError(
      'E_ISO_LABEL',
      `ISO image: the volume label ${JSON.stringify(label)} is not 1–${MAX_LABEL_LENGTH} printable ASCII characters without spaces`,
      { hint: 'use a label such as "cidata" (the one cloud-init looks for on a NoCloud seed)' },
    );
  }
  return label;
}

function checkDate(date: Date): Date {
  const year = date instanceof Date ? date.getUTCFullYear() : Number.NaN;
  // The 7-byte recording date holds years 1900–2155 (NaN fails both tests below).
  if (!(year >= 1900 && year <= 2155)) {
    throw new WarmvmError('E_ISO_DATE', `ISO image: the date ${String(date)} cannot be recorded (ISO 9660 directory records hold years 1900–2155)`, {
      hint: 'pass a createdAt between 1900 and 2155, or none for the fixed default',
    });
  }
  return date;
}

/** The files in Joliet order (UCS-2 code units, which is what JS string comparison compares). */
function checkFiles(files: readonly IsoFile[]): IsoFile[] {
  const seen = new Set<string>();
  for (const file of files) {
    checkName(file.name);
    if (seen.has(file.name)) {
      throw new WarmvmError('E_ISO_NAME', `ISO image: the file name ${JSON.stringify(file.name)} is given twice`, { hint: 'give each file its own name' });
    }
    seen.add(file.name);
    if (file.data.length > MAX_FILE_SIZE) {
      throw new WarmvmError('E_ISO_FILE_TOO_BIG', `ISO image: ${file.name} has ${file.data.length} bytes, more than the ${MAX_FILE_SIZE} one extent holds`, {
        hint: 'keep each file under 4 GiB',
      });
    }
  }
  return [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function checkName(name: string): void {
  const refuse = (why: string): never => {
    throw new WarmvmError('E_ISO_NAME', `ISO image: the file name ${JSON.stringify(name)} ${why}`, {
      hint: 'use a plain name such as "user-data": the image has only a root folder, and Joliet forbids / \\ : ; * ? " < > | and control characters',
    });
  };
  if (typeof name !== 'string' || name === '') refuse('is empty');
  if (name === '.' || name === '..') refuse('is reserved for the folder itself and its parent');
  if (name.length > MAX_JOLIET_NAME_UNITS) refuse(`has ${name.length} UCS-2 characters, more than the ${MAX_JOLIET_NAME_UNITS} Joliet allows`);
  for (const character of name) {
    if (FORBIDDEN_NAME_CHARACTERS.has(character)) refuse(`contains "${character}"`);
    if (/\p{Cc}/u.test(character)) refuse(`contains the control character U+${character.codePointAt(0)!.toString(16).padStart(4, '0').toUpperCase()}`);
    // UCS-2 has no surrogate pairs; a lone surrogate is not text at all.
    if (character.length !== 1 || (character >= '\ud800' && character <= '\udfff')) refuse('contains a character outside the Basic Multilingual Plane, which UCS-2 cannot hold');
  }
  if (name.endsWith('.')) refuse('ends with "." (Linux drops trailing dots from Joliet names, so the guest would see another name)');
}

interface PrimaryId {
  base: string;
  extension: string;
}

/** Level-1 names for `names` (given in Joliet order), unique; see the module comment. */
function mapPrimaryNames(names: readonly string[]): PrimaryId[] {
  const natural = names.map((name): PrimaryId => {
    const dot = name.lastIndexOf('.');
    const [base, extension] = dot > 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [name, ''];
    return { base: dCharacters(base).slice(0, 8), extension: dCharacters(extension).slice(0, 3) };
  });
  const key = (id: PrimaryId): string => `${id.base}.${id.extension}`;
  const taken = new Set(natural.map(key));
  const kept = new Set<string>();
  return natural.map((id) => {
    if (!kept.has(key(id))) {
      kept.add(key(id));
      return id;
    }
    for (let n = 1; ; n += 1) {
      const suffix = `_${n}`;
      const candidate = { base: id.base.slice(0, 8 - suffix.length) + suffix, extension: id.extension };
      if (!taken.has(key(candidate))) {
        taken.add(key(candidate));
        return candidate;
      }
    }
  });
}

function dCharacters(text: string): string {
  let out = '';
  for (const character of text) {
    const upper = character >= 'a' && character <= 'z' ? character.toUpperCase() : character;
    out += /^[A-Z0-9_]$/.test(upper) ? upper : '_';
  }
  return out;
}

/** ECMA-119 9.3: names compared with the shorter padded by spaces, then extensions likewise. */
function comparePrimary(a: PrimaryId, b: PrimaryId): number {
  const left = a.base.padEnd(8, ' ') + a.extension.padEnd(3, ' ');
  const right = b.base.padEnd(8, ' ') + b.extension.padEnd(3, ' ');
  return left < right ? -1 : left > right ? 1 : 0;
}

function ucs2(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16();
}

function recordLength(id: Buffer): number {
  return 33 + id.length + (id.length % 2 === 0 ? 1 : 0); // the pad byte keeps records even-sized
}

/** Offsets of "." , ".." and then `lengths`, each record in one sector; and the sectors used. */
function packRecords(lengths: readonly number[]): { offsets: number[]; sectors: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const length of [DOT_RECORD_LENGTH, DOT_RECORD_LENGTH, ...lengths]) {
    if ((at % SECTOR) + length > SECTOR) at += SECTOR - (at % SECTOR);
    offsets.push(at);
    at += length;
  }
  return { offsets, sectors: Math.ceil(at / SECTOR) };
}

function writeRootDirectory(image: Buffer, namespace: Namespace, recorded: Buffer): void {
  const base = namespace.rootSector * SECTOR;
  const rootSize = namespace.rootSectors * SECTOR;
  const [dotAt, dotdotAt, ...fileAt] = namespace.recordOffsets;
  writeDirectoryRecord(image, base + dotAt!, { extent: namespace.rootSector, size: rootSize, flags: FLAG_DIRECTORY, id: DOT_ID, recorded });
  // The root is its own parent.
  writeDirectoryRecord(image, base + dotdotAt!, { extent: namespace.rootSector, size: rootSize, flags: FLAG_DIRECTORY, id: DOTDOT_ID, recorded });
  namespace.records.forEach(({ id, file }, index) => {
    writeDirectoryRecord(image, base + fileAt[index]!, { extent: file.extent, size: file.data.length, flags: 0, id, recorded });
  });
}

interface DirectoryRecord {
  extent: number;
  size: number;
  flags: number;
  id: Buffer;
  recorded: Buffer;
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

function writePathTables(image: Buffer, namespace: Namespace): void {
  const write = (sector: number, littleEndian: boolean): void => {
    const at = sector * SECTOR;
    image[at] = 1; // length of the directory identifier
    image[at + 1] = 0; // extended attribute record length
    if (littleEndian) {
      image.writeUInt32LE(namespace.rootSector, at + 2);
      image.writeUInt16LE(1, at + 6); // the root's parent is directory number 1, itself
    } else {
      image.writeUInt32BE(namespace.rootSector, at + 2);
      image.writeUInt16BE(1, at + 6);
    }
    image[at + 8] = 0; // the root's identifier
  };
  write(namespace.lPathSector, true);
  write(namespace.mPathSector, false);
}

interface VolumeFields {
  label: string;
  volumeSectors: number;
  recorded: Buffer;
  volumeDate: Buffer;
}

function writeVolumeDescriptor(image: Buffer, namespace: Namespace, fields: VolumeFields): void {
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
  writeDirectoryRecord(image, at + 156, {
    extent: namespace.rootSector,
    size: namespace.rootSectors * SECTOR,
    flags: FLAG_DIRECTORY,
    id: DOT_ID,
    recorded: fields.recorded,
  });
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

function writeDescriptorHeader(image: Buffer, sector: number, type: number): void {
  const at = sector * SECTOR;
  image[at] = type;
  image.write('CD001', at + 1, 'ascii');
  image[at + 6] = 1; // version
}

function asciiField(value: string, length: number): Buffer {
  return Buffer.from(value.padEnd(length, ' '), 'ascii');
}

/** UCS-2 big-endian padded with UCS-2 spaces; an odd length ends with a zero byte. */
function ucs2Field(value: string, length: number): Buffer {
  const field = Buffer.alloc(length);
  ucs2(value.padEnd(Math.floor(length / 2), ' ')).copy(field);
  return field;
}

/** The 7-byte date of directory records, in UTC. */
function recordingDate(date: Date): Buffer {
  return Buffer.from([
    date.getUTCFullYear() - 1900,
    date.getUTCMonth() + 1,
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    0, // offset from GMT in 15-minute steps
  ]);
}

/** The 17-byte date of volume descriptors, in UTC; undefined gives the "not specified" value. */
function volumeDescriptorDate(date: Date | undefined): Buffer {
  const field = Buffer.alloc(17);
  if (date === undefined) {
    field.write('0'.repeat(16), 0, 'ascii');
    return field;
  }
  const two = (value: number): string => String(value).padStart(2, '0');
  const digits =
    String(date.getUTCFullYear()).padStart(4, '0') +
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes()) +
    two(date.getUTCSeconds()) +
    two(Math.floor(date.getUTCMilliseconds() / 10));
  field.write(digits, 0, 'ascii');
  field[16] = 0; // offset from GMT
  return field;
}

function writeBoth16(image: Buffer, at: number, value: number): void {
  image.writeUInt16LE(value, at);
  image.writeUInt16BE(value, at + 2);
}

function writeBoth32(image: Buffer, at: number, value: number): void {
  image.writeUInt32LE(value, at);
  image.writeUInt32BE(value, at + 4);
}
