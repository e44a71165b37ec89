import type { Namespace } from './namespace.js';
import { SECTOR } from './sector.js';

// Path tables (ECMA-119 9.4): one little-endian (type L) and one big-endian (type M) per
// namespace, each in its own sector. With no subdirectories each holds the root's entry alone.

/** The bytes of each path table: the root's entry only, 8 bytes, a 1-byte identifier and a pad byte. */
export const PATH_TABLE_SIZE = 10;

/** The namespace's type-L and type-M path tables, in the sectors laid out for them. */
export function writePathTables(image: Buffer, namespace: Namespace): void {
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
