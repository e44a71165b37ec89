import { WarmvmError } from '../../support/errors.js';

/**
 * The names a file gets in each namespace.
 *
 * Joliet: the record holds the name as given (what Linux shows, since it prefers Joliet): 1–64
 * UCS-2 units, none of `/ \ : ; * ? " < > |` or control characters, not `.` or `..`, not ending in
 * `.` (Linux drops trailing dots), unique.
 *
 * Primary: the record holds a level-1 name: ASCII letters uppercased, every other character but
 * A–Z 0–9 _ turned into `_`, split at the last `.` (a leading dot does not count) into a name cut
 * to 8 and an extension cut to 3, written `NAME.EXT;1` ("user-data" → `USER_DAT.;1`, "meta.json"
 * → `META.JSO;1`). When several files map to one name, the one whose Joliet name sorts first keeps
 * it and each other one gets `_N` in the last places of its name part (`USER_D_1.;1`), N the
 * smallest number giving a name no file has; so the mapping does not depend on the order the
 * files are given in, nor does the image.
 */

const MAX_JOLIET_NAME_UNITS = 64;
const FORBIDDEN_NAME_CHARACTERS = new Set(['/', '\\', ':', ';', '*', '?', '"', '<', '>', '|']);

/** Refuses, with an E_ISO_NAME error that says why, a name Joliet or Linux would not keep as given. */
export function checkName(name: string): void {
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

/** A level-1 name in its two parts, each of d-characters, before they are written `BASE.EXT;1`. */
export interface PrimaryId {
  base: string;
  extension: string;
}

/** Level-1 names for `names` (given in Joliet order), unique; see the module comment. */
export function mapPrimaryNames(names: readonly string[]): PrimaryId[] {
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

/** The identifier a primary directory record holds: `BASE.EXT;1` in ASCII. */
export function primaryIdentifier(id: PrimaryId): Buffer {
  return Buffer.from(`${id.base}.${id.extension};1`, 'ascii');
}

/** ECMA-119 9.3: names compared with the shorter padded by spaces, then extensions likewise. */
export function comparePrimary(a: PrimaryId, b: PrimaryId): number {
  const left = a.base.padEnd(8, ' ') + a.extension.padEnd(3, ' ');
  const right = b.base.padEnd(8, ' ') + b.extension.padEnd(3, ' ');
  return left < right ? -1 : left > right ? 1 : 0;
}

function dCharacters(text: string): string {
  let out = '';
  for (const character of text) {
    const upper = character >= 'a' && character <= 'z' ? character.toUpperCase() : character;
    out += /^[A-Z0-9_]$/.test(upper) ? upper : '_';
  }
  return out;
}
