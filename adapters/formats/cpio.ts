/**
 * A writer for the "newc" cpio format (the one the Linux kernel unpacks as an initramfs), so that
 * building a guest needs no `cpio` binary on the host.
 *
 * Format (see the kernel's Documentation/driver-api/early-userspace/buffer-format.rst): each entry
 * is a 110-byte ASCII header ("070701" then 13 fields of 8 hex digits), the path and a NUL, padded
 * to a multiple of 4, then the data, padded to a multiple of 4. A "TRAILER!!!" entry ends it.
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char'; path: string; major: number; minor: number; mode?: number };

const MAGIC = '070701';
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = 'TRAILER!!!';

/**
 * The archive for `entries`, in their order. Every entry is owned by root and dated 0, so the
 * same inputs give the same bytes. Missing parent folders are added (mode 0755) before their
 * first child: the kernel's unpacker does not create them and would silently drop the child.
 */
export function writeNewc(entries: readonly CpioEntry[]): Buffer {
  const chunks: Buffer[] = [];
  const seen = new Set<string>();
  let ino = 1;

  const emit = (path: string, mode: number, nlink: number, data: Uint8Array, rdev: { major: number; minor: number }): void => {
    chunks.push(header(path, { ino: ino++, mode, nlink, size: data.length, rdevMajor: rdev.major, rdevMinor: rdev.minor }));
    if (data.length > 0) {
      chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      chunks.push(Buffer.alloc(pad4(data.length)));
    }
  };
  const noDev = { major: 0, minor: 0 };

  for (const entry of entries) {
    const path = normalizePath(entry.path);
    if (seen.has(path)) throw new Error(`cpio: ${path} is in the archive twice`);
    const parts = path.split('/');
    for (let depth = 1; depth < parts.length; depth += 1) {
      const parent = parts.slice(0, depth).join('/');
      if (seen.has(parent)) continue;
      seen.add(parent);
      emit(parent, S_IFDIR | 0o755, 2, new Uint8Array(0), noDev);
    }
    seen.add(path);
    switch (entry.type) {
      case 'dir':
        emit(path, S_IFDIR | permissions(entry.mode, 0o755), 2, new Uint8Array(0), noDev);
        break;
      case 'file':
        emit(path, S_IFREG | permissions(entry.mode, 0o644), 1, entry.data, noDev);
        break;
      case 'symlink':
        // A symlink's data is its target, without a NUL.
        emit(path, S_IFLNK | 0o777, 1, Buffer.from(entry.target, 'utf8'), noDev);
        break;
      case 'char':
        emit(path, S_IFCHR | permissions(entry.mode, 0o600), 1, new Uint8Array(0), { major: entry.major, minor: entry.minor });
        break;
    }
  }
  chunks.push(header(TRAILER, { ino: 0, mode: 0, nlink: 1, size: 0, rdevMajor: 0, rdevMinor: 0 }));
  return Buffer.concat(chunks);
}

interface HeaderFields {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
}

function header(path: string, fields: HeaderFields): Buffer {
  const name = Buffer.from(path + '\0', 'utf8');
  const values = [
    fields.ino,
    fields.mode,
    0, // uid
    0, // gid
    fields.nlink,
    0, // mtime
    fields.size,
    0, // devmajor
    0, // devminor
    fields.rdevMajor,
    fields.rdevMinor,
    name.length,
    0, // check (only the "070702" variant uses it)
  ];
  const text = MAGIC + values.map(hex8).join('');
  return Buffer.concat([Buffer.from(text, 'ascii'), name, Buffer.alloc(pad4(text.length + name.length))]);
}

function hex8(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`cpio: field value ${value} does not fit in 32 bits`);
  return value.toString(16).padStart(8, '0');
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

function permissions(mode: number | undefined, fallback: number): number {
  return (mode ?? fallback) & 0o7777;
}

/** Archive paths are relative ("bin/sh"): the kernel unpacks them under "/". */
function normalizePath(path: string): string {
  const trimmed = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '' || trimmed.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`cpio: "${path}" is not a plain relative path`);
  }
  if (trimmed === TRAILER) throw new Error(`cpio: "${TRAILER}" is reserved`);
  return trimmed;
}
