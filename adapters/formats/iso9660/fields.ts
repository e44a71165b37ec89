// The field encodings ECMA-119 structures are made of: numbers written both-endian, text padded
// to its field, and the UCS-2 big-endian text of Joliet.

/** A 16-bit number little-endian, then the same big-endian (ECMA-119 7.2.3). */
export function writeBoth16(image: Buffer, at: number, value: number): void {
  image.writeUInt16LE(value, at);
  image.writeUInt16BE(value, at + 2);
}

/** A 32-bit number little-endian, then the same big-endian (ECMA-119 7.3.3). */
export function writeBoth32(image: Buffer, at: number, value: number): void {
  image.writeUInt32LE(value, at);
  image.writeUInt32BE(value, at + 4);
}

/** `text` as UCS-2 big-endian, as Joliet names and fields hold it. */
export function ucs2(text: string): Buffer {
  return Buffer.from(text, 'utf16le').swap16();
}

/** ASCII padded with spaces to `length`. */
export function asciiField(value: string, length: number): Buffer {
  return Buffer.from(value.padEnd(length, ' '), 'ascii');
}

/** UCS-2 big-endian padded with UCS-2 spaces; an odd length ends with a zero byte. */
export function ucs2Field(value: string, length: number): Buffer {
  const field = Buffer.alloc(length);
  ucs2(value.padEnd(Math.floor(length / 2), ' ')).copy(field);
  return field;
}
