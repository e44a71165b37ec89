import { WarmvmError } from '../../support/errors.js';
import { checkName } from './names.js';

// What a caller gives the writer, and the checks it passes before anything is laid out.

const MAX_LABEL_LENGTH = 16;
const MAX_FILE_SIZE = 0xffffffff; // one extent, and the record's 32-bit data length

/** One file of the image's root folder. */
export interface IsoFile {
  name: string;
  data: Uint8Array;
}

/** What an image holds. */
export interface IsoOptions {
  /** 1–16 printable ASCII characters without spaces, written as given into both descriptors. */
  volumeLabel: string;
  files: readonly IsoFile[];
  /** Every date in the image; a fixed default keeps builds reproducible. */
  createdAt?: Date;
}

/** `label` when it is 1–16 printable ASCII characters without spaces; an E_ISO_LABEL error otherwise. */
export function checkLabel(label: string): string {
  if (typeof label !== 'string' || !/^[\x21-\x7e]{1,16}$/.test(label)) {
    throw new WarmvmError('E_ISO_LABEL', `ISO image: the volume label ${JSON.stringify(label)} is not 1–${MAX_LABEL_LENGTH} printable ASCII characters without spaces`, {
      hint: 'use a label such as "cidata" (the one cloud-init looks for on a NoCloud seed)',
    });
  }
  return label;
}

/** The files in Joliet order (UCS-2 code units, which is what JS string comparison compares). */
export function checkFiles(files: readonly IsoFile[]): IsoFile[] {
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
