import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncDir } from '../support/durable.js';
import { abortError, WarmvmError } from '../support/errors.js';
import { dataExtents, type Extent } from '../snapshot/sparse-extents.js';
import type { Digest } from './types.js';

/*
 * A file as a standard zstd blob, and back, without ever reading or writing its holes.
 *
 * The blob is a run of independent zstd frames, which `zstd -d` (or any zstd reader) turns back
 * into the file: first a skippable frame (ignored by every reader) holding the file's size, then
 * one frame per CHUNK_BYTES of the file, each with its content size and checksum. A chunk that
 * lies in a hole, or reads as zeros, is the same few hundred bytes every time (compressed once),
 * so a 4 GiB guest's untouched RAM costs nothing to read and a few hundred KB to send; and since
 * a chunk of written zeros gives the very bytes a hole does, the blob (and so its digest) depends
 * only on the file's contents, not on where its holes happen to be.
 *
 * Unpacking cuts the output into the same chunks whatever frames the blob has (one from another
 * tool may have one huge frame): a chunk of zeros is not written, so it stays a hole, and the
 * file gets its size last, by ftruncate.
 */

/** The file is cut into frames of this size: each is one native call each way. */
export const CHUNK_BYTES = 4 << 20;
/** Within a chunk with data, a run of zeros this long (and aligned) is left a hole too. */
const HOLE_BYTES = 64 << 10;
/** The skippable frame in front: magic (one of 0x184D2A50..5F), payload length, then the tag and the file's size. */
const SIZE_FRAME_MAGIC = 0x184d2a5b;
const SIZE_FRAME_TAG = Buffer.from('WVMZSTD1', 'latin1');
const SIZE_FRAME_BYTES = 8 + SIZE_FRAME_TAG.length + 8;
/** Data chunks read ahead of the compression, so the disk and zstd work at once. */
const READS_AHEAD = 3;
/** Compressed frames are gathered into writes of this size: a hole's frames are a few hundred bytes each. */
const WRITE_BATCH_BYTES = 8 << 20;
/** The compressed input is read in pieces of this size. */
const INPUT_BYTES = 16 << 20;
/** zstd's level when none is given: what packing uses, and what judges a file worth packing. */
const DEFAULT_LEVEL = 3;

export interface CompressOptions {
  signal?: AbortSignal;
  /** In bytes of the file (its apparent size), holes included. */
  onProgress?(doneBytes: number, totalBytes: number): void;
  /** zstd's level, DEFAULT_LEVEL unless told. */
  level?: number;
}

export interface CompressedBlob {
  /** sha256 of the blob: its name in an OCI registry or layout. */
  digest: Digest;
  /** The blob's size in bytes. */
  size: number;
  /** The file's (apparent) size. */
  uncompressedBytes: number;
}

export interface DecompressOptions {
  signal?: AbortSignal;
  /**
   * In bytes of the file when its size is known (a warmvm blob says it; else `expectedBytes`),
   * otherwise in bytes of the blob read.
   */
  onProgress?(doneBytes: number, totalBytes: number): void;
  /** The file's size: a blob that holds another size is refused (before anything is written, when it says its size). */
  expectedBytes?: number;
  /** Each CHUNK_BYTES of the file as it is written, in order (the last may be shorter), and whether it is all zeros; the buffer is reused after. */
  onChunk?(chunk: Buffer, zero: boolean): void;
}

type Binding = typeof import('zstd-napi/binding.js');

/** Loaded on use: a run that moves no snapshot never needs the native module. */
async function loadBinding(): Promise<Binding> {
  return (await import('zstd-napi/binding.js')).default;
}

/**
 * Compresses `src` into `destFile` as a standard zstd stream, reading only its data extents.
 * Written beside and renamed: `destFile` is the whole blob or absent.
 */
export async function compressFile(src: string, destFile: string, options: CompressOptions = {}): Promise<CompressedBlob> {
  const { signal, onProgress } = options;
  if (signal?.aborted) throw abortError(signal, `compressing ${src}`);
  const found = await stat(src).catch((cause: unknown) => {
    throw new WarmvmError('E_OCI_BLOB', `cannot compress ${src}: it cannot be read`, { hint: 'check that the file is there and readable, then pack again', cause });
  });
  const total = found.size;
  const chunks = Math.ceil(total / CHUNK_BYTES);
  const hasData = chunksWithData(await dataExtents(src), chunks);
  const binding = await loadBinding();
  const cctx = new binding.CCtx();
  cctx.setParameter(binding.CParameter.compressionLevel, options.level ?? DEFAULT_LEVEL);
  cctx.setParameter(binding.CParameter.checksumFlag, 1);
  const compressed = Buffer.allocUnsafe(binding.compressBound(CHUNK_BYTES));
  const zeroFrames = new Map<number, Buffer>();
  const zeroFrame = (length: number): Buffer => {
    let frame = zeroFrames.get(length);
    if (!frame) zeroFrames.set(length, (frame = Buffer.from(compressed.subarray(0, cctx.compress2(compressed, ZEROS.subarray(0, length))))));
    return frame;
  };

  const temp = `${destFile}.tmp-${process.pid}`;
  const input = await open(src, 'r');
  let output: FileHandle | undefined;
  try {
    output = await open(temp, 'w', 0o644);
    const writer = new BatchWriter(output);
    await writer.append(sizeFrame(total));
    // A few buffers, reused, each read ahead of the chunk compressed now.
    const dataChunks = hasData.flatMap((data, index) => (data ? [index] : []));
    const slots = Array.from({ length: Math.min(READS_AHEAD, dataChunks.length) }, () => Buffer.allocUnsafe(CHUNK_BYTES));
    const reads = new Map<number, Promise<Buffer>>();
    let nextRead = 0;
    const readAhead = () => {
      while (nextRead < dataChunks.length && reads.size < slots.length) {
        const index = dataChunks[nextRead] as number;
        reads.set(index, handled(readChunk(input, slots[nextRead % slots.length] as Buffer, index, total, src)));
        nextRead += 1;
      }
    };
    try {
      // An empty file is one empty frame: `zstd -d` refuses a blob with no frame.
      if (chunks === 0) await writer.append(Buffer.from(compressed.subarray(0, cctx.compress2(compressed, Buffer.alloc(0)))));
      readAhead();
      for (let index = 0; index < chunks; index += 1) {
        if (signal?.aborted) throw abortError(signal, `compressing ${src}`);
        const length = Math.min(CHUNK_BYTES, total - index * CHUNK_BYTES);
        let frame: Buffer;
        if (!hasData[index]) {
          frame = zeroFrame(length);
        } else {
          const data = await (reads.get(index) as Promise<Buffer>);
          reads.delete(index);
          frame = isZero(data) ? zeroFrame(length) : compressed.subarray(0, cctx.compress2(compressed, data));
          // compress2 is done with the chunk's slot: the next read goes into it.
          readAhead();
        }
        await writer.append(frame);
        onProgress?.(index * CHUNK_BYTES + length, total);
      }
    } finally {
      // No read ahead may still be filling a buffer once this returns.
      await Promise.allSettled(reads.values());
    }
    const blob = await writer.finish();
    const done = output;
    output = undefined;
    await publish(done, temp, destFile, signal, `compressing ${src}`);
    return { digest: blob.digest, size: blob.size, uncompressedBytes: total };
  } catch (error) {
    await output?.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  } finally {
    await input.close();
  }
}

/** A file smaller than this is always compressed: sampling it would cost more than it saves. */
const SAMPLED_MIN_BYTES = 64 << 20;
/** Chunks compressed to judge a file, spread over it. */
const SAMPLE_CHUNKS = 8;
/** zstd keeping more than this share of the sampled bytes does not pay for itself. */
const NOT_WORTH_RATIO = 0.9;

/**
 * Whether zstd would leave `src` about as large as it is: a large file without holes whose
 * sampled chunks (spread over it, at the level compressFile uses) keep over 90% of their bytes,
 * such as a qcow2 image of compressed clusters or a gzip'd initrd. Such a file travels as it is.
 */
export async function zstdWouldNotShrink(src: string, signal?: AbortSignal): Promise<boolean> {
  const found = await stat(src);
  // Holes are what a zstd blob carries for nothing and a raw one would send as zeros.
  if (found.size < SAMPLED_MIN_BYTES || found.blocks * 512 < found.size * NOT_WORTH_RATIO) return false;
  const binding = await loadBinding();
  const cctx = new binding.CCtx();
  cctx.setParameter(binding.CParameter.compressionLevel, DEFAULT_LEVEL);
  const compressed = Buffer.allocUnsafe(binding.compressBound(CHUNK_BYTES));
  const slot = Buffer.allocUnsafe(CHUNK_BYTES);
  const chunks = Math.floor(found.size / CHUNK_BYTES);
  const input = await open(src, 'r');
  let read = 0;
  let kept = 0;
  try {
    for (let k = 0; k < SAMPLE_CHUNKS; k += 1) {
      if (signal?.aborted) throw abortError(signal, `sampling ${src}`);
      const data = await readChunk(input, slot, Math.floor(((k + 0.5) * chunks) / SAMPLE_CHUNKS), found.size, src);
      read += data.length;
      kept += cctx.compress2(compressed, data);
    }
  } finally {
    await input.close();
  }
  return kept >= read * NOT_WORTH_RATIO;
}

/**
 * Decompresses the zstd blob `src` into `destFile`, leaving a hole wherever a chunk of the
 * output is all zeros. Any standard zstd stream is read, frame after frame, in bounded memory.
 * Written beside and renamed: `destFile` is the whole file or absent.
 */
export async function decompressFile(src: string, destFile: string, options: DecompressOptions = {}): Promise<{ bytes: number }> {
  const { signal, onProgress, expectedBytes } = options;
  if (signal?.aborted) throw abortError(signal, `decompressing ${src}`);
  let input: FileHandle;
  try {
    input = await open(src, 'r');
  } catch (cause) {
    throw new WarmvmError('E_OCI_BLOB', `cannot open the blob ${src}`, { hint: 'pull or import the snapshot again', cause });
  }
  const temp = `${destFile}.tmp-${process.pid}`;
  let output: FileHandle | undefined;
  try {
    const blobSize = (await input.stat()).size;
    if (blobSize === 0) throw badBlob(src, 'it is empty');
    const reader = new InputReader(input, src);
    await reader.fill();
    const declared = declaredSize(reader.available());
    if (declared !== undefined && expectedBytes !== undefined && declared !== expectedBytes) {
      throw badBlob(src, `it holds a file of ${declared} bytes, where ${expectedBytes} were expected`);
    }
    const total = declared ?? expectedBytes;
    const binding = await loadBinding();
    const dctx = new binding.DCtx();
    output = await open(temp, 'w', 0o644);
    const writer = new HoleWriter(output, options.onChunk);
    // Whether the last call left zstd inside a frame (its hint is 0 only at a frame's end).
    let inFrame = false;
    for (;;) {
      await reader.fill();
      const available = reader.available();
      if (available.length === 0 && !inFrame) break;
      let result: [number, number, number];
      try {
        result = dctx.decompressStream(writer.room(), available);
      } catch (cause) {
        throw badBlob(src, `it does not decompress at byte ${reader.position} (${(cause as Error).message})`, cause);
      }
      const [hint, produced, consumed] = result;
      reader.consume(consumed);
      inFrame = hint !== 0;
      if (writer.advance(produced)) {
        await writer.flush();
        if (total !== undefined && writer.done > total) throw badBlob(src, `it holds more than the ${total} bytes ${declared === undefined ? 'expected' : 'it says it holds'}`);
        if (total !== undefined) onProgress?.(writer.done, total);
        else onProgress?.(reader.position, blobSize);
        if (signal?.aborted) throw abortError(signal, `decompressing ${src}`);
      } else if (available.length === 0 && produced === 0) {
        throw badBlob(src, `it ends inside a zstd frame, after ${reader.position} bytes: truncated`);
      } else if (produced === 0 && consumed === 0) {
        throw badBlob(src, `zstd made no progress at byte ${reader.position}`);
      }
    }
    await writer.finish();
    const bytes = writer.done;
    if (declared !== undefined && bytes !== declared) throw badBlob(src, `it holds ${bytes} bytes where it says ${declared}: truncated`);
    if (expectedBytes !== undefined && bytes !== expectedBytes) throw badBlob(src, `it holds ${bytes} bytes, where ${expectedBytes} were expected`);
    onProgress?.(bytes, total ?? bytes);
    // Size last: the file stays sparse past its last data.
    await output.truncate(bytes);
    const done = output;
    output = undefined;
    await publish(done, temp, destFile, signal, `decompressing ${src}`);
    return { bytes };
  } catch (error) {
    await output?.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  } finally {
    await input.close();
  }
}

/** Flushed, closed, then renamed over `destFile` and its folder flushed; a late abort publishes nothing (the caller removes `temp`). */
async function publish(output: FileHandle, temp: string, destFile: string, signal: AbortSignal | undefined, what: string): Promise<void> {
  try {
    await output.datasync();
  } finally {
    await output.close();
  }
  if (signal?.aborted) throw abortError(signal, what);
  await rename(temp, destFile);
  await syncDir(dirname(destFile));
}

/** Which chunks of the file any data extent touches: the others are holes, and never read. */
function chunksWithData(extents: Extent[], chunks: number): boolean[] {
  const hasData = new Array<boolean>(chunks).fill(false);
  for (const extent of extents) {
    if (extent.length <= 0) continue;
    const last = Math.min(chunks - 1, Math.floor((extent.offset + extent.length - 1) / CHUNK_BYTES));
    for (let index = Math.floor(extent.offset / CHUNK_BYTES); index <= last; index += 1) hasData[index] = true;
  }
  return hasData;
}

async function readChunk(handle: FileHandle, slot: Buffer, index: number, total: number, path: string): Promise<Buffer> {
  const position = index * CHUNK_BYTES;
  const length = Math.min(CHUNK_BYTES, total - position);
  for (let done = 0; done < length; ) {
    const { bytesRead } = await handle.read(slot, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new WarmvmError('E_OCI_BLOB', `cannot compress ${path}: it became shorter (${position + done} bytes) while it was read`, {
        hint: 'nothing may write the file while it is packed: stop what writes it, then pack it again',
      });
    }
    done += bytesRead;
  }
  return slot.subarray(0, length);
}

/** Frames gathered into large writes, hashed as they go: one batch is written while the next fills. */
class BatchWriter {
  private readonly hash = createHash('sha256');
  private batches: Buffer[] = [Buffer.allocUnsafe(WRITE_BATCH_BYTES), Buffer.allocUnsafe(WRITE_BATCH_BYTES)];
  private filled = 0;
  private position = 0;
  private pending: Promise<void> = Promise.resolve();

  constructor(private readonly handle: FileHandle) {}

  /** Copies `frame` (at most a batch) into the batch: the caller may reuse its buffer once this returns. */
  async append(frame: Buffer): Promise<void> {
    if (this.filled + frame.length > WRITE_BATCH_BYTES) {
      // The other batch is the one in flight: it must be written before it fills again.
      await this.pending;
      this.start();
    }
    frame.copy(this.batches[0] as Buffer, this.filled);
    this.filled += frame.length;
    this.hash.update(frame);
  }

  async finish(): Promise<{ digest: Digest; size: number }> {
    await this.pending;
    if (this.filled > 0) this.start();
    await this.pending;
    return { digest: `sha256:${this.hash.digest('hex')}`, size: this.position };
  }

  private start(): void {
    const [batch, other] = this.batches as [Buffer, Buffer];
    this.pending = handled(writeAll(this.handle, batch.subarray(0, this.filled), this.position));
    this.position += this.filled;
    this.filled = 0;
    this.batches = [other, batch];
  }
}

/** The compressed input, read in large pieces; the unread rest is moved to the front before each refill, so a whole frame is always in view. */
class InputReader {
  position = 0;
  private readonly buffer = Buffer.allocUnsafe(INPUT_BYTES);
  private start = 0;
  private end = 0;
  private eof = false;

  constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
  ) {}

  available(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }

  consume(bytes: number): void {
    this.start += bytes;
    this.position += bytes;
  }

  /** Refills once less than a frame's worth is left (a frame is at most about CHUNK_BYTES). */
  async fill(): Promise<void> {
    if (this.eof || this.end - this.start > CHUNK_BYTES + (64 << 10)) return;
    this.buffer.copy(this.buffer, 0, this.start, this.end);
    this.end -= this.start;
    this.start = 0;
    while (this.end < this.buffer.length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(this.buffer, this.end, this.buffer.length - this.end, this.position + this.end));
      } catch (cause) {
        throw badBlob(this.path, `it cannot be read at byte ${this.position + this.end}`, cause);
      }
      if (bytesRead === 0) {
        this.eof = true;
        return;
      }
      this.end += bytesRead;
    }
  }
}

/**
 * The output in chunks of CHUNK_BYTES, each written while the next one fills: a chunk of zeros
 * is skipped (a hole), and within the others only the runs of HOLE_BYTES that are not all zeros
 * are written, so the file takes about the space of its data.
 */
class HoleWriter {
  done = 0;
  private readonly slots = [Buffer.allocUnsafe(CHUNK_BYTES), Buffer.allocUnsafe(CHUNK_BYTES)];
  private slot = 0;
  private filled = 0;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly handle: FileHandle,
    private readonly onChunk: DecompressOptions['onChunk'],
  ) {}

  room(): Buffer {
    return (this.slots[this.slot] as Buffer).subarray(this.filled);
  }

  /** Counts `produced` bytes into the chunk; true when the chunk is full. */
  advance(produced: number): boolean {
    this.filled += produced;
    return this.filled === CHUNK_BYTES;
  }

  /** Writes the chunk's data, then starts the next chunk. */
  async flush(): Promise<void> {
    const chunk = (this.slots[this.slot] as Buffer).subarray(0, this.filled);
    const at = this.done;
    this.done += this.filled;
    this.filled = 0;
    if (chunk.length === 0) return;
    const zero = isZero(chunk);
    this.onChunk?.(chunk, zero);
    if (!zero) {
      // The other slot's write must be done before that slot is filled again.
      await this.pending;
      this.pending = handled(this.writeData(chunk, at));
      this.slot ^= 1;
    }
  }

  /** The last (short) chunk, and every write done. */
  async finish(): Promise<void> {
    await this.flush();
    await this.pending;
  }

  private async writeData(chunk: Buffer, at: number): Promise<void> {
    const zero = (offset: number) => offset < chunk.length && isZero(chunk.subarray(offset, offset + HOLE_BYTES));
    for (let start = 0; start < chunk.length; ) {
      while (zero(start)) start += HOLE_BYTES;
      let end = start;
      while (end < chunk.length && !zero(end)) end += HOLE_BYTES;
      if (end > start) await writeAll(this.handle, chunk.subarray(start, Math.min(end, chunk.length)), at + start);
      start = end;
    }
  }
}

/**
 * `promise`, marked as handled: it is awaited later (a read ahead, a write in flight), and a
 * failure before then must not count as an unhandled rejection. Whoever awaits it still gets the error.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

function sizeFrame(bytes: number): Buffer {
  const frame = Buffer.alloc(SIZE_FRAME_BYTES);
  frame.writeUInt32LE(SIZE_FRAME_MAGIC, 0);
  frame.writeUInt32LE(SIZE_FRAME_BYTES - 8, 4);
  SIZE_FRAME_TAG.copy(frame, 8);
  frame.writeBigUInt64LE(BigInt(bytes), 8 + SIZE_FRAME_TAG.length);
  return frame;
}

/** The file's size, if the blob starts with warmvm's size frame. */
function declaredSize(head: Buffer): number | undefined {
  if (head.length < SIZE_FRAME_BYTES || head.readUInt32LE(0) !== SIZE_FRAME_MAGIC || head.readUInt32LE(4) !== SIZE_FRAME_BYTES - 8) return undefined;
  if (!head.subarray(8, 8 + SIZE_FRAME_TAG.length).equals(SIZE_FRAME_TAG)) return undefined;
  const size = head.readBigUInt64LE(8 + SIZE_FRAME_TAG.length);
  return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : undefined;
}

const ZEROS = Buffer.alloc(CHUNK_BYTES);

function isZero(buffer: Buffer): boolean {
  return buffer.equals(ZEROS.subarray(0, buffer.length)); // memcmp, not a JS loop
}

function badBlob(file: string, why: string, cause?: unknown): WarmvmError {
  return new WarmvmError('E_OCI_BLOB', `the blob ${file} is not a whole zstd stream: ${why}`, {
    hint: 'it is damaged or cut short: delete it, then pull or import the snapshot again',
    cause,
  });
}
