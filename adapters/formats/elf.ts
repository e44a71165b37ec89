/**
 * Just enough of ELF64 (little-endian, as on x86_64) to assemble a guest without binutils or a
 * loader on the host: a program's interpreter and the libraries it needs, and a named section
 * (a kernel module's `.modinfo`). `ldd` would run the guest's loader on the host instead.
 */

export interface ElfDynamicInfo {
  /** PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; undefined for static programs and libraries. */
  interpreter: string | undefined;
  /** DT_NEEDED sonames, in order. */
  needed: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const PT_NOTE = 4;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;

interface ProgramHeader {
  type: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
}

export class ElfFormatError extends Error {}

export function readElfDynamic(file: Buffer, what = 'file'): ElfDynamicInfo {
  const programs = programHeaders(file, what);

  const interp = programs.find((program) => program.type === PT_INTERP);
  const interpreter = interp ? cString(file, interp.offset, what) : undefined;

  const dynamic = programs.find((program) => program.type === PT_DYNAMIC);
  if (!dynamic) return { interpreter, needed: [] };
  const neededOffsets: bigint[] = [];
  let strtab: bigint | undefined;
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.filesz; at += 16) {
    within(file, at, 16, what);
    const tag = file.readBigInt64LE(at);
    const value = file.readBigUInt64LE(at + 8);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) neededOffsets.push(value);
    if (tag === DT_STRTAB) strtab = value;
  }
  if (neededOffsets.length === 0) return { interpreter, needed: [] };
  if (strtab === undefined) throw new ElfFormatError(`${what}: has DT_NEEDED entries but no string table`);
  // DT_STRTAB holds a virtual address: find the loaded segment that maps it back to the file.
  const strtabAddress = strtab;
  const segment = programs.find((program) => program.type === PT_LOAD && strtabAddress >= program.vaddr && strtabAddress < program.vaddr + BigInt(program.filesz));
  if (!segment) throw new ElfFormatError(`${what}: its string table is outside every loaded segment`);
  const strtabOffset = segment.offset + toNumber(strtabAddress - segment.vaddr, what);
  return { interpreter, needed: neededOffsets.map((offset) => cString(file, strtabOffset + toNumber(offset, what), what)) };
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Buffer;
}

/** The notes of every PT_NOTE segment (e.g. the kernel's "Xen" notes that announce a PVH entry). */
export function readElfNotes(file: Buffer, what = 'file'): ElfNote[] {
  const notes: ElfNote[] = [];
  for (const program of programHeaders(file, what)) {
    if (program.type !== PT_NOTE) continue;
    within(file, program.offset, program.filesz, what);
    const end = program.offset + program.filesz;
    for (let at = program.offset; at + 12 <= end; ) {
      const nameSize = file.readUInt32LE(at);
      const descSize = file.readUInt32LE(at + 4);
      const type = file.readUInt32LE(at + 8);
      const nameStart = at + 12;
      const descStart = nameStart + align4(nameSize);
      const next = descStart + align4(descSize);
      if (next > end) throw new ElfFormatError(`${what}: a note runs past its segment`);
      notes.push({ name: file.toString('utf8', nameStart, nameStart + Math.max(0, nameSize - 1)), type, desc: file.subarray(descStart, descStart + descSize) });
      at = next;
    }
  }
  return notes;
}

/** The bytes of the section called `name`, or undefined when the file has none. */
export function readElfSection(file: Buffer, name: string, what = 'file'): Buffer | undefined {
  const elf = header(file, what);
  if (elf.shoff === 0 || elf.shnum === 0) return undefined;
  const section = (index: number): { name: number; offset: number; size: number } => {
    const base = elf.shoff + index * elf.shentsize;
    within(file, base, 64, what);
    return {
      name: file.readUInt32LE(base),
      offset: toNumber(file.readBigUInt64LE(base + 24), what),
      size: toNumber(file.readBigUInt64LE(base + 32), what),
    };
  };
  const names = section(elf.shstrndx);
  for (let index = 0; index < elf.shnum; index += 1) {
    const candidate = section(index);
    if (cString(file, names.offset + candidate.name, what) !== name) continue;
    within(file, candidate.offset, candidate.size, what);
    return file.subarray(candidate.offset, candidate.offset + candidate.size);
  }
  return undefined;
}

function programHeaders(file: Buffer, what: string): ProgramHeader[] {
  const elf = header(file, what);
  const programs: ProgramHeader[] = [];
  for (let index = 0; index < elf.phnum; index += 1) {
    const base = elf.phoff + index * elf.phentsize;
    within(file, base, 56, what);
    programs.push({
      type: file.readUInt32LE(base),
      offset: toNumber(file.readBigUInt64LE(base + 8), what),
      vaddr: file.readBigUInt64LE(base + 16),
      filesz: toNumber(file.readBigUInt64LE(base + 32), what),
    });
  }
  return programs;
}

function align4(value: number): number {
  return (value + 3) & ~3;
}

function header(file: Buffer, what: string): { phoff: number; phentsize: number; phnum: number; shoff: number; shentsize: number; shnum: number; shstrndx: number } {
  if (file.length < 64 || file.readUInt32BE(0) !== 0x7f454c46) throw new ElfFormatError(`${what}: not an ELF file`);
  // e_ident[EI_CLASS] = 2 (64-bit), e_ident[EI_DATA] = 1 (little-endian): the only layout this reads.
  if (file[4] !== 2 || file[5] !== 1) throw new ElfFormatError(`${what}: not a 64-bit little-endian ELF file`);
  return {
    phoff: toNumber(file.readBigUInt64LE(0x20), what),
    shoff: toNumber(file.readBigUInt64LE(0x28), what),
    phentsize: file.readUInt16LE(0x36),
    phnum: file.readUInt16LE(0x38),
    shentsize: file.readUInt16LE(0x3a),
    shnum: file.readUInt16LE(0x3c),
    shstrndx: file.readUInt16LE(0x3e),
  };
}

function cString(file: Buffer, offset: number, what: string): string {
  const end = file.indexOf(0, offset);
  if (offset >= file.length || end < 0) throw new ElfFormatError(`${what}: a string runs past the end of the file`);
  return file.toString('utf8', offset, end);
}

function within(file: Buffer, offset: number, length: number, what: string): void {
  if (offset < 0 || offset + length > file.length) throw new ElfFormatError(`${what}: truncated (a table runs past the end of the file)`);
}

function toNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfFormatError(`${what}: an offset is too large`);
  return Number(value);
}
