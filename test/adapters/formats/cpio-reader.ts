/**
 * An independent reader of "newc" cpio archives, written from the format's description (not from
 * adapters/formats/cpio.ts), so tests can check what the writer produced the way the kernel reads it.
 */
export interface ReadEntry {
  path: string;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
  /** Byte offset of the header in the archive. */
  offset: number;
  /** Byte offset of the data in the archive. */
  dataOffset: number;
}

export function readNewc(archive: Buffer): ReadEntry[] {
  const entries: ReadEntry[] = [];
  let at = 0;
  for (;;) {
    const magic = archive.toString('ascii', at, at + 6);
    if (magic !== '070701') throw new Error(`bad magic ${JSON.stringify(magic)} at ${at}`);
    const field = (index: number): number => {
      const text = archive.toString('ascii', at + 6 + index * 8, at + 14 + index * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(text)) throw new Error(`field ${index} at ${at} is not 8 hex digits: ${text}`);
      return parseInt(text, 16);
    };
    const nameSize = field(11);
    const size = field(6);
    const nameStart = at + 110;
    if (archive[nameStart + nameSize - 1] !== 0) throw new Error(`name at ${at} is not NUL-terminated`);
    const path = archive.toString('utf8', nameStart, nameStart + nameSize - 1);
    const dataOffset = align4(nameStart + nameSize);
    const entry: ReadEntry = {
      path,
      ino: field(0),
      mode: field(1),
      uid: field(2),
      gid: field(3),
      nlink: field(4),
      mtime: field(5),
      rdevMajor: field(9),
      rdevMinor: field(10),
      data: archive.subarray(dataOffset, dataOffset + size),
      offset: at,
      dataOffset,
    };
    at = align4(dataOffset + size);
    if (path === 'TRAILER!!!') {
      if (at !== archive.length) throw new Error(`${archive.length - at} bytes after the trailer`);
      return entries;
    }
    entries.push(entry);
  }
}

function align4(value: number): number {
  return (value + 3) & ~3;
}
