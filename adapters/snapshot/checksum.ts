import { createHash, webcrypto } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { abortError } from '../support/errors.js';
import { dataExtents, type Extent } from './sparse-extents.js';

/** The memory file is hashed in chunks of this size: holes cost nothing, and chunks hash in parallel. */
export const CHUNK_BYTES = 4 << 20;
/** Chunks in flight: WebCrypto's digest runs on libuv's thread pool (4 threads), so both cores hash at once. */
const IN_FLIGHT = 4;

export interface Checksum {
  /** sha256 over the sha256 of each chunk in order, a chunk in a hole hashed as the zeros it reads as. */
  sha256: string;
  bytes: number;
  dataBytes: number;
}

/**
 * The checksum of a (sparse) file's contents, independent of where its holes are: two files
 * with the same bytes have the same checksum whether a run of zeros is a hole or written.
 */
export async function fileChecksum(path: string, options: { signal?: AbortSignal } = {}): Promise<Checksum> {
  const bytes = (await stat(path)).size;
  const extents = await dataExtents(path);
  const chunks = Math.ceil(bytes / CHUNK_BYTES);
  const digests: Buffer[] = new Array(chunks);
  const withData = chunksWithData(extents, chunks);
  for (let index = 0; index < chunks; index += 1) if (!withData.has(index)) digests[index] = zeroDigest(chunkLength(index, bytes));
  const handle = await open(path, 'r');
  try {
    const queue = [...withData].sort((a, b) => a - b);
    const worker = async (): Promise<void> => {
      for (let index = queue.shift(); index !== undefined; index = queue.shift()) {
        if (options.signal?.aborted) throw abortError(options.signal, 'the checksum');
        const buffer = Buffer.allocUnsafe(chunkLength(index, bytes));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, index * CHUNK_BYTES);
        if (bytesRead !== buffer.length) throw new Error(`${path} became shorter while it was hashed`);
        digests[index] = Buffer.from(await webcrypto.subtle.digest('SHA-256', buffer));
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  } finally {
    await handle.close();
  }
  const whole = createHash('sha256');
  for (const digest of digests) whole.update(digest);
  return { sha256: whole.digest('hex'), bytes, dataBytes: extents.reduce((sum, extent) => sum + extent.length, 0) };
}

function chunkLength(index: number, bytes: number): number {
  return Math.min(CHUNK_BYTES, bytes - index * CHUNK_BYTES);
}

function chunksWithData(extents: Extent[], chunks: number): Set<number> {
  const found = new Set<number>();
  for (const extent of extents) {
    const last = Math.min(chunks - 1, Math.floor((extent.offset + extent.length - 1) / CHUNK_BYTES));
    for (let index = Math.floor(extent.offset / CHUNK_BYTES); index <= last; index += 1) found.add(index);
  }
  return found;
}

const zeroDigests = new Map<number, Buffer>();

function zeroDigest(length: number): Buffer {
  let digest = zeroDigests.get(length);
  if (!digest) {
    digest = createHash('sha256').update(Buffer.alloc(length)).digest();
    zeroDigests.set(length, digest);
  }
  return digest;
}
