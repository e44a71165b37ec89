import { open, stat } from 'node:fs/promises';
import { loadExeca } from '../support/lazy-execa.js';

export interface Extent {
  offset: number;
  length: number;
}

const SCAN_CHUNK = 1 << 20;

/**
 * Where a sparse file holds data. Node has no SEEK_DATA, so ask the filesystem through FIEMAP
 * (`filefrag`), which costs nothing per hole; where that is not available (tmpfs, no e2fsprogs),
 * read the file and keep the chunks that are not all zeros.
 */
export async function dataExtents(path: string): Promise<Extent[]> {
  const size = (await stat(path)).size;
  const mapped = await extentsFromFiemap(path, size).catch(() => undefined);
  return mapped ?? (await extentsByScanning(path, size));
}

/** Parses `filefrag -e`: logical block ranges, with the block size from its header line. */
export function parseFilefrag(output: string, size: number): Extent[] | undefined {
  const blockMatch = /\((\d+) blocks? of (\d+) bytes\)/.exec(output);
  if (!blockMatch) return undefined;
  const blockSize = Number(blockMatch[2]);
  const extents: Extent[] = [];
  for (const line of output.split('\n')) {
    const match = /^\s*\d+:\s*(\d+)\.\.\s*(\d+):.*$/.exec(line);
    if (!match) continue;
    // An unwritten (preallocated) extent reads as zeros: it is a hole for our purposes.
    if (/\bunwritten\b/.test(line)) continue;
    const start = Number(match[1]) * blockSize;
    const end = Math.min(size, (Number(match[2]) + 1) * blockSize);
    if (end > start) extents.push({ offset: start, length: end - start });
  }
  return mergeExtents(extents);
}

export function mergeExtents(extents: Extent[]): Extent[] {
  const sorted = [...extents].sort((a, b) => a.offset - b.offset);
  const merged: Extent[] = [];
  for (const extent of sorted) {
    const last = merged.at(-1);
    if (last && extent.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, extent.offset + extent.length - last.offset);
    } else merged.push({ ...extent });
  }
  return merged;
}

async function extentsFromFiemap(path: string, size: number): Promise<Extent[] | undefined> {
  // -s syncs first, so delayed allocations show up as extents.
  const execa = await loadExeca();
  const result = await execa('filefrag', ['-s', '-e', path], { stdin: 'ignore', timeout: 60_000 });
  return parseFilefrag(result.stdout, size);
}

async function extentsByScanning(path: string, size: number): Promise<Extent[]> {
  const handle = await open(path, 'r');
  const buffer = Buffer.alloc(SCAN_CHUNK);
  const extents: Extent[] = [];
  try {
    for (let offset = 0; offset < size; offset += SCAN_CHUNK) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(SCAN_CHUNK, size - offset), offset);
      if (!isAllZero(buffer, bytesRead)) extents.push({ offset, length: bytesRead });
    }
  } finally {
    await handle.close();
  }
  return mergeExtents(extents);
}

const ZEROS = Buffer.alloc(SCAN_CHUNK);

function isAllZero(buffer: Buffer, length: number): boolean {
  return buffer.subarray(0, length).equals(ZEROS.subarray(0, length)); // memcmp, not a JS loop
}
