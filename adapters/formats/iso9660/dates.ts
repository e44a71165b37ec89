import { WarmvmError } from '../../support/errors.js';

// The two date encodings of ECMA-119, both written in UTC: the 7-byte one of directory records
// and the 17-byte one of volume descriptors.

/** `date` when a directory record can hold it (years 1900–2155); an E_ISO_DATE error otherwise. */
export function checkDate(date: Date): Date {
  const year = date instanceof Date ? date.getUTCFullYear() : Number.NaN;
  // The 7-byte recording date holds years 1900–2155 (NaN fails both tests below).
  if (!(year >= 1900 && year <= 2155)) {
    throw new WarmvmError('E_ISO_DATE', `ISO image: the date ${String(date)} cannot be recorded (ISO 9660 directory records hold years 1900–2155)`, {
      hint: 'pass a createdAt between 1900 and 2155, or none for the fixed default',
    });
  }
  return date;
}

/** The 7-byte date of directory records, in UTC. */
export function recordingDate(date: Date): Buffer {
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
export function volumeDescriptorDate(date: Date | undefined): Buffer {
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
