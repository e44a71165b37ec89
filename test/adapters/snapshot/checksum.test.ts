import { randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, chunkChecksum, fileChecksum } from '../../../adapters/snapshot/checksum.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

/** A sparse file of `bytes` with `data` written at each offset. */
async function sparse(path: string, bytes: number, data: [number, Buffer][]): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.truncate(bytes);
    for (const [offset, chunk] of data) await handle.write(chunk, 0, chunk.length, offset);
  } finally {
    await handle.close();
  }
}

describe('fileChecksum', () => {
  it('depends on the bytes, not on where the holes are', async () => {
    const dir = await temp();
    const piece = randomBytes(100_000);
    const size = 3 * CHUNK_BYTES + 12_345;
    await sparse(join(dir, 'holes'), size, [[CHUNK_BYTES + 7, piece]]);
    // The same contents with every zero written out.
    const whole = Buffer.alloc(size);
    piece.copy(whole, CHUNK_BYTES + 7);
    await writeFile(join(dir, 'written'), whole);
    const holes = await fileChecksum(join(dir, 'holes'));
    const written = await fileChecksum(join(dir, 'written'));
    expect(holes.checksum).toBe(written.checksum);
    expect(holes.checksum).toMatch(/^xxh128-4m:[0-9a-f]{32}$/);
    expect(holes.bytes).toBe(size);
    expect(holes.dataBytes).toBeLessThan(written.dataBytes);
  });

  it('changes with one byte anywhere, in data or in a hole', async () => {
    const dir = await temp();
    const size = 2 * CHUNK_BYTES;
    await sparse(join(dir, 'a'), size, [[10, Buffer.from('hello')]]);
    await sparse(join(dir, 'b'), size, [[10, Buffer.from('hellp')]]);
    await sparse(join(dir, 'c'), size, [
      [10, Buffer.from('hello')],
      [size - 1, Buffer.from([1])],
    ]);
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name) => fileChecksum(join(dir, name))));
    expect(new Set([a?.checksum, b?.checksum, c?.checksum]).size).toBe(3);
  });

  it('stops when cancelled', async () => {
    const dir = await temp();
    await writeFile(join(dir, 'f'), randomBytes(2 * CHUNK_BYTES));
    const controller = new AbortController();
    controller.abort();
    await expect(fileChecksum(join(dir, 'f'), { signal: controller.signal })).rejects.toMatchObject({ code: 'E_ABORTED' });
  });
});

describe('chunkChecksum', () => {
  it('fed the chunks of a file (zeros said or found) gives its fileChecksum; a short chunk ends it', async () => {
    const dir = await temp();
    const size = 2 * CHUNK_BYTES + 999;
    const data = Buffer.alloc(size);
    randomBytes(5000).copy(data, CHUNK_BYTES * 2 + 10);
    await writeFile(join(dir, 'f'), data);
    const fed = await chunkChecksum();
    fed.add(data.subarray(0, CHUNK_BYTES), true);
    fed.add(data.subarray(CHUNK_BYTES, 2 * CHUNK_BYTES));
    fed.add(data.subarray(2 * CHUNK_BYTES));
    expect(fed.finish()).toBe((await fileChecksum(join(dir, 'f'))).checksum);
    const off = await chunkChecksum();
    off.add(data.subarray(0, 1000));
    expect(() => off.add(data.subarray(0, CHUNK_BYTES))).toThrow(/after a short one/);
  });
});
