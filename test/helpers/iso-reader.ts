/**
 * An independent reader of ISO 9660 images with Joliet names, written from ECMA-119 and the Joliet
 * specification (not from adapters/formats/iso9660/), so tests can check what the writer produced the
 * way a guest reads it. It reads the root directory only, and throws on anything it finds
 * inconsistent: both-endian halves that differ, path tables that disagree with each other or with
 * the root record, records that cross a sector boundary, a "." or ".." that is missing.
 */
export interface IsoEntry {
  name: string;
  extent: number;
  size: number;
  flags: number;
  /** The 7-byte recording date, read as UTC plus its GMT offset. */
  recorded: Date;
}

export interface IsoImage {
  label: string;
  jolietLabel: string;
  /** The escape sequence that names the Joliet level: "%/@" (1), "%/C" (2) or "%/E" (3). */
  jolietEscape: string;
  volumeSpaceSize: number;
  logicalBlockSize: number;
  created: Date;
  modified: Date;
  /** File records of the primary root directory, in their order on disk, "." and ".." left out. */
  primary: IsoEntry[];
  /** File records of the Joliet root directory, in their order on disk, with their contents. */
  joliet: (IsoEntry & { data: Buffer })[];
}

const BLOCK = 2048;

export function readIso(image: Buffer): IsoImage {
  if (image.length % BLOCK !== 0) throw new Error(`image size ${image.length} is not a multiple of ${BLOCK}`);
  let pvd: Buffer | undefined;
  let svd: Buffer | undefined;
  let jolietEscape = '';
  for (let sector = 16; ; sector += 1) {
    if ((sector + 1) * BLOCK > image.length) throw new Error('no Volume Descriptor Set Terminator before the end of the image');
    const descriptor = image.subarray(sector * BLOCK, (sector + 1) * BLOCK);
    const id = descriptor.toString('ascii', 1, 6);
    if (id !== 'CD001') throw new Error(`sector ${sector}: standard identifier is ${JSON.stringify(id)}, not "CD001"`);
    if (descriptor[6] !== 1) throw new Error(`sector ${sector}: descriptor version ${descriptor[6]}, not 1`);
    const type = descriptor[0];
    if (type === 255) break;
    if (type === 1) {
      if (pvd) throw new Error(`sector ${sector}: a second Primary Volume Descriptor`);
      pvd = descriptor;
    } else if (type === 2) {
      // Joliet: one of three escape sequences, left-justified in the 32-byte field at 88.
      const sequence = descriptor.toString('latin1', 88, 91);
      if (['%/@', '%/C', '%/E'].includes(sequence) && descriptor.subarray(91, 120).every((byte) => byte === 0)) {
        svd = descriptor;
        jolietEscape = sequence;
      }
    }
  }
  if (!pvd) throw new Error('no Primary Volume Descriptor');
  if (!svd) throw new Error('no Joliet Supplementary Volume Descriptor');

  const volumeSpaceSize = both32(pvd, 80, 'PVD volume space size');
  if (both32(svd, 80, 'SVD volume space size') !== volumeSpaceSize) throw new Error('PVD and SVD disagree on the volume space size');
  if (volumeSpaceSize * BLOCK !== image.length) throw new Error(`volume space size ${volumeSpaceSize} blocks, but the image has ${image.length / BLOCK}`);
  const logicalBlockSize = both16(pvd, 128, 'PVD logical block size');
  if (logicalBlockSize !== BLOCK || both16(svd, 128, 'SVD logical block size') !== BLOCK) throw new Error(`logical block size ${logicalBlockSize}, expected ${BLOCK}`);
  for (const [descriptor, what] of [
    [pvd, 'PVD'],
    [svd, 'SVD'],
  ] as const) {
    if (both16(descriptor, 120, `${what} volume set size`) !== 1) throw new Error(`${what}: volume set size is not 1`);
    if (both16(descriptor, 124, `${what} volume sequence number`) !== 1) throw new Error(`${what}: volume sequence number is not 1`);
    if (descriptor[881] !== 1) throw new Error(`${what}: file structure version is not 1`);
  }

  const primaryRoot = parseRecord(pvd, 156, 'PVD root record', 'ascii');
  const jolietRoot = parseRecord(svd, 156, 'SVD root record', 'ucs2');
  checkPathTables(image, pvd, primaryRoot.extent, 'primary');
  checkPathTables(image, svd, jolietRoot.extent, 'Joliet');

  const primary = readRootDirectory(image, primaryRoot, 'ascii');
  for (const entry of primary) {
    if (entry.extent + Math.ceil(entry.size / BLOCK) > volumeSpaceSize) throw new Error(`${entry.name}: its data runs past the volume`);
  }
  const joliet = readRootDirectory(image, jolietRoot, 'ucs2').map((entry) => {
    if (entry.extent + Math.ceil(entry.size / BLOCK) > volumeSpaceSize) throw new Error(`${entry.name}: its data runs past the volume`);
    return { ...entry, data: entry.size === 0 ? Buffer.alloc(0) : image.subarray(entry.extent * BLOCK, entry.extent * BLOCK + entry.size) };
  });

  return {
    label: pvd.toString('ascii', 40, 72).replace(/ +$/, ''),
    jolietLabel: ucs2(svd.subarray(40, 72)).replace(/ +$/, ''),
    jolietEscape,
    volumeSpaceSize,
    logicalBlockSize,
    created: volumeDate(pvd.subarray(813, 830)),
    modified: volumeDate(pvd.subarray(830, 847)),
    primary,
    joliet,
  };
}

/** Both path tables hold exactly the root, whose extent matches the root record's. */
function checkPathTables(image: Buffer, descriptor: Buffer, rootExtent: number, what: string): void {
  const size = both32(descriptor, 132, `${what} path table size`);
  const lTable = image.subarray(descriptor.readUInt32LE(140) * BLOCK).subarray(0, size);
  const mTable = image.subarray(descriptor.readUInt32BE(148) * BLOCK).subarray(0, size);
  const parse = (table: Buffer, littleEndian: boolean): { extent: number; parent: number; id: Buffer }[] => {
    const entries = [];
    let at = 0;
    while (at < table.length) {
      const idLength = table[at]!;
      if (idLength === 0) throw new Error(`${what} path table: an entry with an empty identifier at ${at}`);
      entries.push({
        extent: littleEndian ? table.readUInt32LE(at + 2) : table.readUInt32BE(at + 2),
        parent: littleEndian ? table.readUInt16LE(at + 6) : table.readUInt16BE(at + 6),
        id: table.subarray(at + 8, at + 8 + idLength),
      });
      at += 8 + idLength + (idLength % 2);
    }
    if (at !== table.length) throw new Error(`${what} path table: its entries fill ${at} bytes, but its size is ${table.length}`);
    return entries;
  };
  const l = parse(lTable, true);
  const m = parse(mTable, false);
  if (JSON.stringify(l) !== JSON.stringify(m)) throw new Error(`${what}: the type-L and type-M path tables disagree: ${JSON.stringify(l)} vs ${JSON.stringify(m)}`);
  const root = l[0];
  if (l.length !== 1 || !root) throw new Error(`${what} path table: ${l.length} entries, expected the root only`);
  if (root.parent !== 1 || root.id.length !== 1 || root.id[0] !== 0) throw new Error(`${what} path table: the first entry is not the root`);
  if (root.extent !== rootExtent) throw new Error(`${what} path table: root at ${root.extent}, but the root record says ${rootExtent}`);
}

function readRootDirectory(image: Buffer, root: IsoEntry, encoding: 'ascii' | 'ucs2'): IsoEntry[] {
  if (root.size % BLOCK !== 0) throw new Error(`root directory size ${root.size} is not whole blocks`);
  const entries: IsoEntry[] = [];
  const start = root.extent * BLOCK;
  for (let block = 0; block < root.size / BLOCK; block += 1) {
    const sectorStart = start + block * BLOCK;
    let at = sectorStart;
    // A zero length byte means no more records in this sector.
    while (at < sectorStart + BLOCK && image[at] !== 0) {
      if (at + image[at]! > sectorStart + BLOCK) throw new Error(`a directory record at ${at} crosses a sector boundary`);
      entries.push(parseRecord(image, at, `record at ${at}`, encoding));
      at += image[at]!;
    }
    if (image.subarray(at, sectorStart + BLOCK).some((byte) => byte !== 0)) throw new Error(`bytes after the last record of the sector at ${sectorStart}`);
  }
  const [dot, dotdot, ...files] = entries;
  if (dot?.name !== '\0' || dotdot?.name !== '\x01') throw new Error('the root directory does not start with "." and ".."');
  if (dot.extent !== root.extent || dot.size !== root.size) throw new Error('"." disagrees with the root record');
  if (dotdot.extent !== root.extent || dotdot.size !== root.size) throw new Error('the root\'s ".." is not the root itself');
  for (const file of files) if (file.flags & 0x02) throw new Error(`${file.name}: a subdirectory, which this reader does not expect`);
  return files;
}

function parseRecord(buffer: Buffer, at: number, what: string, encoding: 'ascii' | 'ucs2'): IsoEntry {
  const length = buffer[at]!;
  const idLength = buffer[at + 32]!;
  const expected = 33 + idLength + (idLength % 2 === 0 ? 1 : 0);
  if (length !== expected) throw new Error(`${what}: record length ${length}, but an identifier of ${idLength} bytes needs ${expected}`);
  if (buffer[at + 1] !== 0) throw new Error(`${what}: has an extended attribute record`);
  if (both16(buffer, at + 28, `${what} volume sequence number`) !== 1) throw new Error(`${what}: volume sequence number is not 1`);
  const id = buffer.subarray(at + 33, at + 33 + idLength);
  const special = idLength === 1 && (id[0] === 0 || id[0] === 1);
  return {
    name: special ? String.fromCharCode(id[0]!) : encoding === 'ascii' ? id.toString('ascii') : ucs2(id),
    extent: both32(buffer, at + 2, `${what} extent`),
    size: both32(buffer, at + 10, `${what} data length`),
    flags: buffer[at + 25]!,
    recorded: recordingDate(buffer.subarray(at + 18, at + 25)),
  };
}

function both16(buffer: Buffer, at: number, what: string): number {
  const little = buffer.readUInt16LE(at);
  const big = buffer.readUInt16BE(at + 2);
  if (little !== big) throw new Error(`${what}: little-endian ${little} but big-endian ${big}`);
  return little;
}

function both32(buffer: Buffer, at: number, what: string): number {
  const little = buffer.readUInt32LE(at);
  const big = buffer.readUInt32BE(at + 4);
  if (little !== big) throw new Error(`${what}: little-endian ${little} but big-endian ${big}`);
  return little;
}

function ucs2(bytes: Buffer): string {
  if (bytes.length % 2 !== 0) throw new Error(`a UCS-2 field of odd length ${bytes.length}`);
  let text = '';
  for (let at = 0; at < bytes.length; at += 2) text += String.fromCharCode(bytes.readUInt16BE(at));
  return text;
}

function recordingDate(bytes: Buffer): Date {
  const offsetMinutes = bytes.readInt8(6) * 15;
  return new Date(Date.UTC(bytes[0]! + 1900, bytes[1]! - 1, bytes[2], bytes[3], bytes[4], bytes[5]) - offsetMinutes * 60_000);
}

function volumeDate(bytes: Buffer): Date {
  const digits = bytes.toString('ascii', 0, 16);
  if (!/^\d{16}$/.test(digits)) throw new Error(`volume date ${JSON.stringify(digits)} is not 16 digits`);
  const part = (from: number, to: number): number => Number(digits.slice(from, to));
  const offsetMinutes = bytes.readInt8(16) * 15;
  return new Date(Date.UTC(part(0, 4), part(4, 6) - 1, part(6, 8), part(8, 10), part(10, 12), part(12, 14), part(14, 16) * 10) - offsetMinutes * 60_000);
}
