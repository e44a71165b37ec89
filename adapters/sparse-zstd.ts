import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { appendFile, open, rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { CompressStream, DecompressStream } from 'zstd-napi';
import { WarmvmError } from './errors.js';
import { dataExtents, type Extent } from './sparse-extents.js';

/*
 * A sparse file, compressed: only its data extents go through zstd, and the holes are put back
 * as holes. Layout (all lengths little-endian u32):
 *   "WVMSPZ01" | header length | header JSON {apparentBytes, extents: [[offset, length], ...]}
 *   | one zstd frame (with its checksum) of the extents' bytes, in order
 *   | trailer JSON {dataBytes, sha256 (of those bytes)} | trailer length | "WVMSPZ01"
 * The magic at both ends makes a truncated file detectable before any decompression.
 */
const MAGIC = Buffer.from('WVMSPZ01', 'ascii');
const READ_CHUNK = 1 << 20;

export interface SparseCompressResult {
  apparentBytes: number;
  dataBytes: number;
  compressedBytes: number;
  sha256: string;
}

export interface SparseOptions {
  level?: number;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

interface Header {
  apparentBytes: number;
  extents: [number, number][];
}

interface Trailer {
  dataBytes: number;
  sha256: string;
}

export async function compressSparse(src: string, dest: string, options: SparseOptions = {}): Promise<SparseCompressResult> {
  const apparentBytes = (await stat(src)).size;
  const extents = await dataExtents(src);
  const dataBytes = extents.reduce((sum, extent) => sum + extent.length, 0);
  const header = Buffer.from(JSON.stringify({ apparentBytes, extents: extents.map((e) => [e.offset, e.length]) } satisfies Header));
  const temp = `${dest}.tmp-${process.pid}`;
  const hash = createHash('sha256');
  try {
    const out = createWriteStream(temp);
    out.write(Buffer.concat([MAGIC, u32(header.length), header]));
    await pipeline(readExtents(src, extents, hash, dataBytes, options), new CompressStream({ compressionLevel: options.level ?? 3, checksumFlag: true }), out, {
      signal: options.signal,
    });
    const trailer = Buffer.from(JSON.stringify({ dataBytes, sha256: hash.digest('hex') } satisfies Trailer));
    await appendFile(temp, Buffer.concat([trailer, u32(trailer.length), MAGIC]));
    const compressedBytes = (await stat(temp)).size;
    await rename(temp, dest);
    return { apparentBytes, dataBytes, compressedBytes, sha256: (JSON.parse(trailer.toString()) as Trailer).sha256 };
  } catch (error) {
    await rm(temp, { force: true });
    if (options.signal?.aborted) throw new WarmvmError('E_ABORTED', `compressing ${src} was cancelled`, { cause: options.signal.reason });
    throw error;
  }
}

/** Writes `src`'s extents back into a file of the original size whose gaps stay holes. */
export async function decompressSparse(src: string, dest: string, options: SparseOptions = {}): Promise<{ apparentBytes: number; dataBytes: number; sha256: string }> {
  const { header, trailer, dataStart, dataEnd } = await readFraming(src);
  const temp = `${dest}.tmp-${process.pid}`;
  const hash = createHash('sha256');
  const out = await open(temp, 'w', 0o644);
  let written = 0;
  try {
    await out.truncate(header.apparentBytes);
    let index = 0;
    let within = 0;
    const stream = createReadStream(src, { start: dataStart, end: dataEnd - 1 }).pipe(new DecompressStream());
    options.signal?.addEventListener('abort', () => stream.destroy(new Error('aborted')), { once: true });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      let used = 0;
      while (used < chunk.length) {
        const extent = header.extents[index];
        if (!extent) throw corrupt(src, 'it holds more data than its extents');
        const take = Math.min(extent[1] - within, chunk.length - used);
        await out.write(chunk, used, take, extent[0] + within);
        used += take;
        within += take;
        written += take;
        if (within === extent[1]) {
          index += 1;
          within = 0;
        }
      }
      options.onProgress?.(written, trailer.dataBytes);
    }
    const sha256 = hash.digest('hex');
    if (written !== trailer.dataBytes || sha256 !== trailer.sha256) throw corrupt(src, `its data does not match its checksum (${written} of ${trailer.dataBytes} bytes)`);
    await out.close();
    await rename(temp, dest);
    return { apparentBytes: header.apparentBytes, dataBytes: written, sha256 };
  } catch (error) {
    await out.close().catch(() => undefined);
    await rm(temp, { force: true });
    if (options.signal?.aborted) throw new WarmvmError('E_ABORTED', `decompressing ${src} was cancelled`, { cause: options.signal.reason });
    if (error instanceof WarmvmError) throw error;
    throw corrupt(src, (error as Error).message, error);
  }
}

async function* readExtents(path: string, extents: Extent[], hash: ReturnType<typeof createHash>, total: number, options: SparseOptions): AsyncGenerator<Buffer> {
  const handle = await open(path, 'r');
  let done = 0;
  try {
    for (const extent of extents) {
      for (let offset = 0; offset < extent.length; offset += READ_CHUNK) {
        const length = Math.min(READ_CHUNK, extent.length - offset);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buffer, 0, length, extent.offset + offset);
        const chunk = buffer.subarray(0, bytesRead);
        hash.update(chunk);
        done += bytesRead;
        options.onProgress?.(done, total);
        yield chunk;
        if (bytesRead < length) throw new Error(`${path} shrank while being read`);
      }
    }
  } finally {
    await handle.close();
  }
}

async function readFraming(src: string): Promise<{ header: Header; trailer: Trailer; dataStart: number; dataEnd: number }> {
  const handle = await open(src, 'r').catch((cause: unknown) => {
    throw new WarmvmError('E_SNAPSHOT_MISSING', `cannot open the compressed state ${src}`, { hint: 'the snapshot is incomplete; the cold boot captures a new one', cause });
  });
  try {
    const size = (await handle.stat()).size;
    const head = Buffer.alloc(12);
    const tail = Buffer.alloc(12);
    if (size < 24) throw corrupt(src, `it is ${size} bytes long: truncated`);
    await handle.read(head, 0, 12, 0);
    await handle.read(tail, 0, 12, size - 12);
    if (!head.subarray(0, 8).equals(MAGIC)) throw corrupt(src, 'it does not start as a warmvm sparse state');
    if (!tail.subarray(4, 12).equals(MAGIC)) throw corrupt(src, 'its end marker is missing: truncated');
    const headerLength = head.readUInt32LE(8);
    const trailerLength = tail.readUInt32LE(0);
    const dataStart = 12 + headerLength;
    const dataEnd = size - 12 - trailerLength;
    if (dataEnd < dataStart) throw corrupt(src, 'its framing lengths do not fit its size');
    const headerBytes = Buffer.alloc(headerLength);
    const trailerBytes = Buffer.alloc(trailerLength);
    await handle.read(headerBytes, 0, headerLength, 12);
    await handle.read(trailerBytes, 0, trailerLength, dataEnd);
    try {
      return { header: JSON.parse(headerBytes.toString()) as Header, trailer: JSON.parse(trailerBytes.toString()) as Trailer, dataStart, dataEnd };
    } catch (cause) {
      throw corrupt(src, 'its header or trailer is not readable', cause);
    }
  } finally {
    await handle.close();
  }
}

function corrupt(file: string, why: string, cause?: unknown): WarmvmError {
  return new WarmvmError('E_SNAPSHOT_CORRUPT', `the compressed state ${file} is corrupt: ${why}`, {
    hint: 'the snapshot is set aside and the cold boot captures a new one; "warmvm reset --snapshot" removes it',
    cause,
  });
}

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value);
  return buffer;
}
