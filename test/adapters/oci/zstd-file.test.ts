import { createHash, randomBytes } from 'node:crypto';
import { truncateSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { CHUNK_BYTES, compressFile, decompressFile } from '../../../adapters/oci/zstd-file.js';

const made: string[] = [];
afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'oci-helper-zstd-'));
  made.push(d);
  return d;
}

const MIB = 1 << 20;
/** Not a multiple of the chunk: the last chunk is short. */
const APPARENT = 64 * MIB + 12_345;
const WRITTEN_ZEROS = { offset: 40 * MIB, length: 8 * MIB };

/**
 * A 64 MiB-apparent file: about 5 MiB of data at scattered (some unaligned) offsets, part random,
 * part compressible, and 8 MiB of zeros that were written (allocated, not a hole).
 */
async function sparseFile(path: string): Promise<{ dataBytes: number }> {
  const handle = await open(path, 'w');
  await handle.truncate(APPARENT);
  const pieces: [number, Buffer][] = [
    [4096, randomBytes(MIB)],
    [10 * MIB, Buffer.alloc(2 * MIB, 'warmvm ')],
    [33 * MIB + 123, randomBytes(1.5 * MIB)],
    [WRITTEN_ZEROS.offset, Buffer.alloc(WRITTEN_ZEROS.length)],
    [APPARENT - 300_000, randomBytes(300_000)],
  ];
  let dataBytes = 0;
  for (const [offset, data] of pieces) {
    await handle.write(data, 0, data.length, offset);
    if (offset !== WRITTEN_ZEROS.offset) dataBytes += data.length;
  }
  await handle.close();
  return { dataBytes };
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** What this process has read through read() and the like, page cache and holes included (Linux's rchar). */
async function bytesRead(): Promise<number> {
  return Number(/^rchar: (\d+)$/m.exec(await readFile('/proc/self/io', 'utf8'))?.[1]);
}

async function leftovers(d: string): Promise<string[]> {
  return (await readdir(d)).filter((name) => name.includes('.tmp-'));
}

describe('zstd file blobs', () => {
  it('compresses a sparse file into a standard zstd stream that zstd -d and decompressFile both turn back into it, holes as holes', async () => {
    const d = await dir();
    const src = join(d, 'mem.raw');
    const { dataBytes } = await sparseFile(src);
    const progress: [number, number][] = [];
    const blob = await compressFile(src, join(d, 'mem.zst'), { onProgress: (done, total) => progress.push([done, total]) });
    expect(blob.uncompressedBytes).toBe(APPARENT);
    expect(blob.size).toBe((await stat(join(d, 'mem.zst'))).size);
    expect(blob.digest).toBe(`sha256:${await sha256(join(d, 'mem.zst'))}`);
    expect(blob.size).toBeLessThan(dataBytes);
    expect(progress.at(-1)).toEqual([APPARENT, APPARENT]);
    expect(progress.every(([done], i) => i === 0 || done > (progress[i - 1] as [number, number])[0])).toBe(true);

    // Any zstd reader: the CLI.
    await execa('zstd', ['-d', '-q', '-f', join(d, 'mem.zst'), '-o', join(d, 'by-cli.raw')]);
    expect(await sha256(join(d, 'by-cli.raw'))).toBe(await sha256(src));

    const out = join(d, 'restored.raw');
    const restored = await decompressFile(join(d, 'mem.zst'), out, { expectedBytes: APPARENT });
    expect(restored.bytes).toBe(APPARENT);
    expect((await stat(out)).size).toBe(APPARENT);
    expect(await sha256(out)).toBe(await sha256(src));
    // Only the chunks with data take space: not the holes, nor the zeros that were written.
    const allocated = (await stat(out)).blocks * 512;
    expect(allocated).toBeGreaterThanOrEqual(dataBytes);
    expect(allocated).toBeLessThanOrEqual(dataBytes + MIB);
    expect(allocated).toBeLessThan((await stat(src)).blocks * 512 - WRITTEN_ZEROS.length / 2);
    expect(await leftovers(d)).toEqual([]);
  });

  it("gives the same blob whether a run of zeros is a hole or written: the digest is the file's contents", async () => {
    const d = await dir();
    await sparseFile(join(d, 'a.raw'));
    const first = await compressFile(join(d, 'a.raw'), join(d, 'a.zst'));
    // The copy has the written zeros as a hole.
    await decompressFile(join(d, 'a.zst'), join(d, 'b.raw'));
    expect((await stat(join(d, 'b.raw'))).blocks).toBeLessThan((await stat(join(d, 'a.raw'))).blocks);
    const second = await compressFile(join(d, 'b.raw'), join(d, 'b.zst'));
    expect(second).toEqual(first);
  });

  it("reads another tool's zstd stream (one large frame, no size frame) and still leaves the zeros as holes", async () => {
    const d = await dir();
    const src = join(d, 'disk.raw');
    const { dataBytes } = await sparseFile(src);
    await execa('zstd', ['-3', '-T1', '-q', '-f', src, '-o', join(d, 'disk.zst')]);
    const progress: [number, number][] = [];
    const restored = await decompressFile(join(d, 'disk.zst'), join(d, 'out.raw'), { onProgress: (done, total) => progress.push([done, total]) });
    expect(restored.bytes).toBe(APPARENT);
    expect(await sha256(join(d, 'out.raw'))).toBe(await sha256(src));
    expect((await stat(join(d, 'out.raw'))).blocks * 512).toBeLessThanOrEqual(dataBytes + MIB);
    // No size to go by: the blob's bytes read, then the file's at the end.
    expect(progress.at(-1)).toEqual([APPARENT, APPARENT]);
    // Told the size, it checks it.
    await expect(decompressFile(join(d, 'disk.zst'), join(d, 'short.raw'), { expectedBytes: APPARENT - 1 })).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: expect.stringContaining(`where ${APPARENT - 1} were expected`),
    });
    expect(await leftovers(d)).toEqual([]);
  });

  it('refuses a blob cut inside a frame, cut between frames, damaged, or not of the expected size, naming it, with no output left', async () => {
    const d = await dir();
    const src = join(d, 'mem.raw');
    await sparseFile(src);
    const zst = join(d, 'mem.zst');
    await compressFile(src, zst);
    const whole = await readFile(zst);

    await writeFile(join(d, 'cut.zst'), whole.subarray(0, whole.length - 1000));
    await expect(decompressFile(join(d, 'cut.zst'), join(d, 'a.raw'))).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: expect.stringMatching(new RegExp(`${join(d, 'cut.zst')} .*it ends inside a zstd frame, after \\d+ bytes: truncated`)),
    });
    // Another tool's blob says no size: a cut inside its frame is all there is to go by.
    await execa('zstd', ['-3', '-q', '-f', src, '-o', join(d, 'foreign.zst')]);
    const foreign = await readFile(join(d, 'foreign.zst'));
    await writeFile(join(d, 'foreign-cut.zst'), foreign.subarray(0, foreign.length - 1000));
    await expect(decompressFile(join(d, 'foreign-cut.zst'), join(d, 'a2.raw'))).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: expect.stringContaining(`${join(d, 'foreign-cut.zst')} is not a whole zstd stream: it ends inside a zstd frame`),
    });

    // The last frame is the short chunk's: find where it starts, and cut the blob there.
    const binding = (await import('zstd-napi/binding.js')).default;
    let at = 24;
    let lastFrame = at;
    while (at < whole.length) {
      lastFrame = at;
      at += binding.findFrameCompressedSize(whole.subarray(at));
    }
    await writeFile(join(d, 'frames.zst'), whole.subarray(0, lastFrame));
    await expect(decompressFile(join(d, 'frames.zst'), join(d, 'b.raw'))).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: expect.stringContaining(`holds ${Math.floor(APPARENT / CHUNK_BYTES) * CHUNK_BYTES} bytes where it says ${APPARENT}: truncated`),
    });

    const damaged = Buffer.from(whole);
    for (let i = Math.floor(whole.length / 3); i < Math.floor(whole.length / 3) + 16; i += 1) damaged[i] = (damaged[i] ?? 0) ^ 0x5a;
    await writeFile(join(d, 'damaged.zst'), damaged);
    const error = await decompressFile(join(d, 'damaged.zst'), join(d, 'c.raw')).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_OCI_BLOB', message: expect.stringContaining(join(d, 'damaged.zst')), hint: expect.stringContaining('pull or import') });
    expect((error as Error).cause).toBeInstanceOf(Error);

    await expect(decompressFile(zst, join(d, 'd.raw'), { expectedBytes: APPARENT + 1 })).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: expect.stringContaining(`a file of ${APPARENT} bytes, where ${APPARENT + 1} were expected`),
    });
    // Its size frame (after the 8 bytes of frame magic and length, and the 8 of warmvm's tag) says less than it holds.
    const understated = Buffer.from(whole);
    understated.writeBigUInt64LE(BigInt(2 * CHUNK_BYTES), 16);
    await writeFile(join(d, 'understated.zst'), understated);
    await expect(decompressFile(join(d, 'understated.zst'), join(d, 'g.raw'))).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: expect.stringContaining(`holds more than the ${2 * CHUNK_BYTES} bytes it says it holds`),
    });
    await expect(decompressFile(join(d, 'absent.zst'), join(d, 'h.raw'))).rejects.toMatchObject({ code: 'E_OCI_BLOB', message: `cannot open the blob ${join(d, 'absent.zst')}` });
    // Opens, and cannot be read.
    await expect(decompressFile(d, join(d, 'i.raw'))).rejects.toMatchObject({ code: 'E_OCI_BLOB', message: expect.stringContaining('it cannot be read at byte 0') });
    await writeFile(join(d, 'empty.zst'), '');
    await expect(decompressFile(join(d, 'empty.zst'), join(d, 'e.raw'))).rejects.toMatchObject({ code: 'E_OCI_BLOB', message: expect.stringContaining('empty') });
    await writeFile(join(d, 'text.zst'), 'not zstd at all');
    await expect(decompressFile(join(d, 'text.zst'), join(d, 'f.raw'))).rejects.toMatchObject({ code: 'E_OCI_BLOB' });

    const names = await readdir(d);
    expect(names.filter((name) => name.endsWith('.raw')).sort()).toEqual(['mem.raw']);
    expect(await leftovers(d)).toEqual([]);
  });

  it('stops when aborted midway, leaving neither the output nor its temp file', async () => {
    const d = await dir();
    const src = join(d, 'mem.raw');
    await sparseFile(src);
    // Stopped at the next chunk, not at the end.
    let last = 0;
    const controller = new AbortController();
    const onProgress = (done: number) => {
      last = done;
      if (done >= 2 * CHUNK_BYTES) controller.abort(new Error('Ctrl-C'));
    };
    await expect(compressFile(src, join(d, 'mem.zst'), { signal: controller.signal, onProgress })).rejects.toMatchObject({
      code: 'E_ABORTED',
      message: `compressing ${src} was cancelled`,
    });
    expect(last).toBe(2 * CHUNK_BYTES);
    expect((await readdir(d)).sort()).toEqual(['mem.raw']);

    await compressFile(src, join(d, 'mem.zst'));
    const again = new AbortController();
    const onUnpacked = (done: number) => {
      last = done;
      if (done >= 2 * CHUNK_BYTES) again.abort(new Error('Ctrl-C'));
    };
    await expect(decompressFile(join(d, 'mem.zst'), join(d, 'out.raw'), { signal: again.signal, onProgress: onUnpacked })).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(last).toBe(2 * CHUNK_BYTES);
    expect((await readdir(d)).sort()).toEqual(['mem.raw', 'mem.zst']);
  });

  it('refuses a file that is not there, or shrinks while it is compressed', async () => {
    const d = await dir();
    const src = join(d, 'mem.raw');
    await sparseFile(src);
    let cut = false;
    const onProgress = () => {
      // Chunks are read a few ahead: those past 40 MiB are read after this.
      if (!cut) truncateSync(src, CHUNK_BYTES);
      cut = true;
    };
    await expect(compressFile(src, join(d, 'mem.zst'), { onProgress })).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: expect.stringContaining(`cannot compress ${src}: it became shorter`),
    });
    expect((await readdir(d)).sort()).toEqual(['mem.raw']);
    await expect(compressFile(join(d, 'absent.raw'), join(d, 'absent.zst'))).rejects.toMatchObject({
      code: 'E_OCI_BLOB',
      message: `cannot compress ${join(d, 'absent.raw')}: it cannot be read`,
      cause: expect.objectContaining({ code: 'ENOENT' }),
    });
  });

  it('handles an empty file and one that is all hole', async () => {
    const d = await dir();
    await writeFile(join(d, 'empty'), '');
    const empty = await compressFile(join(d, 'empty'), join(d, 'empty.zst'));
    expect(empty.uncompressedBytes).toBe(0);
    await execa('zstd', ['-d', '-q', '-f', join(d, 'empty.zst'), '-o', join(d, 'empty.cli')]);
    expect((await stat(join(d, 'empty.cli'))).size).toBe(0);
    expect(await decompressFile(join(d, 'empty.zst'), join(d, 'empty.out'))).toEqual({ bytes: 0 });

    await writeFile(join(d, 'hole'), '');
    await truncate(join(d, 'hole'), 256 * MIB);
    // The holes are never read: this process's read() calls take in a few bytes, not 256 MiB of zeros.
    const readBefore = await bytesRead();
    const hole = await compressFile(join(d, 'hole'), join(d, 'hole.zst'));
    expect((await bytesRead()) - readBefore).toBeLessThan(4 * MIB);
    expect(hole.size).toBeLessThan(64 << 10);
    await decompressFile(join(d, 'hole.zst'), join(d, 'hole.out'));
    expect((await stat(join(d, 'hole.out'))).size).toBe(256 * MIB);
    expect((await stat(join(d, 'hole.out'))).blocks).toBe(0);
  });
});
