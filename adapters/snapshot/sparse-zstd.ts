import { createHash } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { WarmvmError } from '../support/errors.js';
import { dataExtents, type Extent } from './sparse-extents.js';

/*
 * A sparse file, compressed: only its data extents go through zstd, and the holes are put back
 * as holes. The extents' bytes, in order, are cut into independent zstd frames of FRAME_BYTES
 * (each with its content checksum), so that each frame is one native call each way: the
 * streaming API's 128 KiB steps cost more than the decompression itself on a restore.
 * Layout (all lengths little-endian u32):
 *   "WVMSPZ02" | header length | header JSON {apparentBytes, extents: [[offset, length], ...]}
 *   | the frames, back to back
 *   | trailer JSON {dataBytes, sha256 (of the extents' bytes), frames: [[compressed, data], ...]}
 *   | trailer length | "WVMSPZ02"
 * The magic at both ends makes a truncated file detectable before any decompression.
 */
const MAGIC = Buffer.from('WVMSPZ02', 'ascii');
const OLDER_MAGIC = /^WVMSPZ\d\d$/;
const FRAME_BYTES = 4 << 20;

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
  frames: [number, number][];
}

export async function compressSparse(src: string, dest: string, options: SparseOptions = {}): Promise<SparseCompressResult> {
  const apparentBytes = (await stat(src)).size;
  const extents = await dataExtents(src);
  const dataBytes = extents.reduce((sum, extent) => sum + extent.length, 0);
  const header = Buffer.from(JSON.stringify({ apparentBytes, extents: extents.map((e) => [e.offset, e.length]) } satisfies Header));
  const temp = `${dest}.tmp-${process.pid}`;
  const hash = createHash('sha256');
  const compressor = new (await import('zstd-napi')).Compressor();
  compressor.setParameters({ compressionLevel: options.level ?? 3, checksumFlag: true });
  const input = openSync(src, 'r');
  let output: number | undefined;
  try {
    output = openSync(temp, 'w', 0o644);
    let position = writeAll(output, Buffer.concat([MAGIC, u32(header.length), header]), 0);
    const frames: [number, number][] = [];
    let done = 0;
    for (const data of frameData(input, extents, src)) {
      hash.update(data);
      const frame = compressor.compress(data);
      position = writeAll(output, frame, position);
      frames.push([frame.length, data.length]);
      done += data.length;
      options.onProgress?.(done, dataBytes);
      // Let timers, signals and progress through between frames.
      await yieldToEventLoop();
      if (options.signal?.aborted) throw new WarmvmError('E_ABORTED', `compressing ${src} was cancelled`, { cause: options.signal.reason });
    }
    const sha256 = hash.digest('hex');
    const trailer = Buffer.from(JSON.stringify({ dataBytes, sha256, frames } satisfies Trailer));
    position = writeAll(output, Buffer.concat([trailer, u32(trailer.length), MAGIC]), position);
    closeSync(output);
    output = undefined;
    await rename(temp, dest);
    return { apparentBytes, dataBytes, compressedBytes: position, sha256 };
  } catch (error) {
    if (output !== undefined) closeSync(output);
    await rm(temp, { force: true });
    throw error;
  } finally {
    closeSync(input);
  }
}

/** Writes `src`'s extents back into a file of the original size whose gaps stay holes. */
export async function decompressSparse(src: string, dest: string, options: SparseOptions = {}): Promise<{ apparentBytes: number; dataBytes: number; sha256: string }> {
  const { header, trailer, dataStart, dataEnd } = readFraming(src);
  const framed = trailer.frames.reduce((sum, [compressed]) => sum + compressed, 0);
  if (dataStart + framed !== dataEnd) throw corrupt(src, 'its frame index does not fit its size');
  const temp = `${dest}.tmp-${process.pid}`;
  // Loaded on use: a resume whose raw state is cached never needs it.
  const decompressor = new (await import('zstd-napi')).Decompressor();
  const input = openSync(src, 'r');
  let output: number | undefined;
  try {
    output = openSync(temp, 'w', 0o644);
    const writer = new ExtentWriter(output, header.extents, src);
    let position = dataStart;
    for (const [compressed, expected] of trailer.frames) {
      const frame = readExactly(input, compressed, position, src);
      position += compressed;
      let data: Buffer;
      try {
        // Checks the frame's content checksum: a damaged frame throws here.
        data = decompressor.decompress(frame);
      } catch (cause) {
        throw corrupt(src, `a frame at byte ${position - compressed} does not decompress (${(cause as Error).message})`, cause);
      }
      if (data.length !== expected) throw corrupt(src, `a frame at byte ${position - compressed} holds ${data.length} bytes, not ${expected}`);
      // Synchronous positional writes: a page-cache copy each, cheaper than a thread-pool hop.
      writer.write(data);
      options.onProgress?.(writer.written, trailer.dataBytes);
      await yieldToEventLoop();
      if (options.signal?.aborted) throw new WarmvmError('E_ABORTED', `decompressing ${src} was cancelled`, { cause: options.signal.reason });
    }
    if (writer.written !== trailer.dataBytes || !writer.complete) throw corrupt(src, `it holds ${writer.written} of its ${trailer.dataBytes} data bytes`);
    // Size last, through the fd: the file stays sparse past its last extent, and a raw file of
    // the full size is a whole one (the resume path checks the size).
    ftruncateSync(output, header.apparentBytes);
    closeSync(output);
    output = undefined;
    await rename(temp, dest);
    return { apparentBytes: header.apparentBytes, dataBytes: writer.written, sha256: trailer.sha256 };
  } catch (error) {
    if (output !== undefined) closeSync(output);
    await rm(temp, { force: true });
    if (error instanceof WarmvmError) throw error;
    throw corrupt(src, (error as Error).message, error);
  } finally {
    closeSync(input);
  }
}

/** The extents' bytes in order, cut into pieces of FRAME_BYTES (the last one shorter). */
function* frameData(fd: number, extents: Extent[], path: string): Generator<Buffer> {
  let buffer = Buffer.allocUnsafe(FRAME_BYTES);
  let filled = 0;
  for (const extent of extents) {
    for (let offset = 0; offset < extent.length; ) {
      const length = Math.min(FRAME_BYTES - filled, extent.length - offset);
      readExactly(fd, length, extent.offset + offset, path, buffer, filled);
      filled += length;
      offset += length;
      if (filled === FRAME_BYTES) {
        yield buffer;
        buffer = Buffer.allocUnsafe(FRAME_BYTES);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield buffer.subarray(0, filled);
}

/** Puts a stream of data bytes back at their extents' offsets. */
class ExtentWriter {
  written = 0;
  private index = 0;
  private within = 0;

  constructor(
    private readonly fd: number,
    private readonly extents: [number, number][],
    private readonly path: string,
  ) {}

  get complete(): boolean {
    return this.index === this.extents.length;
  }

  write(data: Buffer): void {
    for (let used = 0; used < data.length; ) {
      const extent = this.extents[this.index];
      if (!extent) throw corrupt(this.path, 'it holds more data than its extents');
      const take = Math.min(extent[1] - this.within, data.length - used);
      writeAll(this.fd, data.subarray(used, used + take), extent[0] + this.within);
      used += take;
      this.within += take;
      this.written += take;
      if (this.within === extent[1]) {
        this.index += 1;
        this.within = 0;
      }
    }
  }
}

function readFraming(src: string): { header: Header; trailer: Trailer; dataStart: number; dataEnd: number } {
  let fd: number;
  try {
    fd = openSync(src, 'r');
  } catch (cause) {
    throw new WarmvmError('E_SNAPSHOT_MISSING', `cannot open the compressed state ${src}`, { hint: 'the snapshot is incomplete; the cold boot captures a new one', cause });
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 24) throw corrupt(src, `it is ${size} bytes long: truncated`);
    const head = readExactly(fd, 12, 0, src);
    const tail = readExactly(fd, 12, size - 12, src);
    const magic = head.subarray(0, 8).toString('latin1');
    if (magic !== MAGIC.toString('latin1')) {
      throw corrupt(
        src,
        OLDER_MAGIC.test(magic) ? `it is in another warmvm format (${magic}, this warmvm reads ${MAGIC.toString('latin1')})` : 'it does not start as a warmvm sparse state',
      );
    }
    if (!tail.subarray(4, 12).equals(MAGIC)) throw corrupt(src, 'its end marker is missing: truncated');
    const headerLength = head.readUInt32LE(8);
    const trailerLength = tail.readUInt32LE(0);
    const dataStart = 12 + headerLength;
    const dataEnd = size - 12 - trailerLength;
    if (dataEnd < dataStart) throw corrupt(src, 'its framing lengths do not fit its size');
    try {
      const header = JSON.parse(readExactly(fd, headerLength, 12, src).toString()) as Header;
      const trailer = JSON.parse(readExactly(fd, trailerLength, dataEnd, src).toString()) as Trailer;
      if (!Array.isArray(header.extents) || !Array.isArray(trailer.frames)) throw new Error('no extents or frames');
      return { header, trailer, dataStart, dataEnd };
    } catch (cause) {
      throw corrupt(src, 'its header or trailer is not readable', cause);
    }
  } finally {
    closeSync(fd);
  }
}

function readExactly(fd: number, length: number, position: number, path: string, into = Buffer.allocUnsafe(length), at = 0): Buffer {
  for (let done = 0; done < length; ) {
    const read = readSync(fd, into, at + done, length - done, position + done);
    if (read === 0) throw new Error(`${path} ends ${length - done} bytes early at byte ${position + done} (truncated, or shrank while being read)`);
    done += read;
  }
  return into.subarray(at, at + length);
}

function writeAll(fd: number, data: Buffer, position: number): number {
  for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, position + done);
  return position + data.length;
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
