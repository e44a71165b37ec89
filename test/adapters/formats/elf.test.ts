import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ElfFormatError, readElfDynamic, readElfNotes, readElfSection } from '../../../adapters/formats/elf.js';

/** The host's own dash (Debian's /bin/sh) is a dynamically linked x86_64 program to read. */
const DASH = '/usr/bin/dash';

describe('readElfDynamic', () => {
  it('finds the loader and the libraries a dynamic program needs', async () => {
    const info = readElfDynamic(await readFile(DASH), 'dash');
    expect(info.interpreter).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(info.needed).toContain('libc.so.6');
  });

  it('reads a shared library: no interpreter, its own needs', async () => {
    const info = readElfDynamic(await readFile('/lib/x86_64-linux-gnu/libm.so.6'), 'libm');
    expect(info.interpreter).toBeUndefined();
    expect(info.needed).toEqual(['libc.so.6', 'ld-linux-x86-64.so.2']);
  });

  it('says what is wrong with a file that is not ELF or is cut short', async () => {
    expect(() => readElfDynamic(Buffer.from('#!/bin/sh\necho hi\n'.repeat(5)), 'script')).toThrow(ElfFormatError);
    const head = (await readFile(DASH)).subarray(0, 100);
    expect(() => readElfDynamic(head, 'dash')).toThrow(/truncated/);
  });
});

describe('readElfSection and readElfNotes', () => {
  it('finds a named section, and none for a name that is absent', async () => {
    const dash = await readFile(DASH);
    expect(readElfSection(dash, '.interp', 'dash')?.toString()).toBe('/lib64/ld-linux-x86-64.so.2\0');
    expect(readElfSection(dash, '.modinfo', 'dash')).toBeUndefined();
  });

  it('reads the GNU build-id note', async () => {
    const notes = readElfNotes(await readFile(DASH), 'dash');
    const buildId = notes.find((note) => note.name === 'GNU' && note.type === 3);
    expect(buildId?.desc.length).toBe(20);
  });
});
