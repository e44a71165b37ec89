import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mergeExtents, parseFilefrag } from '../../../adapters/snapshot/sparse-extents.js';
import { compressSparse, decompressSparse } from '../../../adapters/snapshot/sparse-zstd.js';
import { projectRoot } from '../../../adapters/support/project-root.js';

// On the project's disk (ext4 here), not /tmp, which may be tmpfs without FIEMAP.
const scratch = join(projectRoot(), '.warmvm-test', 'sparse');
const made: string[] = [];
afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function dir(): Promise<string> {
  await mkdir(scratch, { recursive: true });
  const d = await mkdtemp(join(scratch, 't-'));
  made.push(d);
  return d;
}

/** A 256 MiB-apparent file with a few MB of data at scattered offsets (some compressible). */
async function sparseFile(path: string, apparent = 256 << 20): Promise<void> {
  const handle = await open(path, 'w');
  await handle.truncate(apparent);
  for (const [index, offset] of [4096, 10 << 20, 100 << 20, apparent - (1 << 20)].entries()) {
    const data = index % 2 === 0 ? randomBytes(1 << 20) : Buffer.alloc(1 << 20, 'warmvm ');
    await handle.write(data, 0, data.length, Math.min(offset, apparent - data.length));
  }
  await handle.close();
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'r');
  const buffer = Buffer.alloc(8 << 20);
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
  }
  await handle.close();
  return hash.digest('hex');
}

describe('sparse zstd', () => {
  it('round-trips a sparse file byte for byte, and the copy is as sparse as the original', async () => {
    const d = await dir();
    const src = join(d, 'state.raw');
    await sparseFile(src);
    const packed = await compressSparse(src, join(d, 'state.zst'));
    expect(packed.apparentBytes).toBe(256 << 20);
    expect(packed.dataBytes).toBeLessThan(16 << 20);
    expect(packed.compressedBytes).toBeLessThan(packed.dataBytes);
    const out = join(d, 'restored.raw');
    await decompressSparse(join(d, 'state.zst'), out);
    const [a, b] = [await stat(src), await stat(out)];
    expect(b.size).toBe(a.size);
    expect(b.blocks * 512).toBeLessThanOrEqual(a.blocks * 512);
    expect(await sha256(out)).toBe(await sha256(src));
  });

  it('cuts data into several frames whose edges fall inside extents, and puts every byte back', async () => {
    const d = await dir();
    const src = join(d, 'state.raw');
    const handle = await open(src, 'w');
    await handle.truncate(64 << 20);
    // 10.5 MiB of data: frames of 4 MiB end inside the second and third extents.
    for (const [offset, data] of [
      [0, randomBytes(2.5 * 2 ** 20)],
      [20 << 20, Buffer.alloc(3 << 20, 'frame ')],
      [40 << 20, randomBytes(5 << 20)],
    ] as const) {
      await handle.write(data, 0, data.length, offset);
    }
    await handle.close();
    const packed = await compressSparse(src, join(d, 'state.zst'));
    expect(packed.dataBytes).toBe(10.5 * 2 ** 20);
    const out = join(d, 'restored.raw');
    const restored = await decompressSparse(join(d, 'state.zst'), out);
    expect(restored).toMatchObject({ apparentBytes: 64 << 20, dataBytes: 10.5 * 2 ** 20, sha256: packed.sha256 });
    expect(await sha256(out)).toBe(await sha256(src));
    expect((await stat(out)).blocks * 512).toBeLessThanOrEqual((await stat(src)).blocks * 512);
  });

  it('refuses a state in another format by name, so the fallback can say why', async () => {
    const d = await dir();
    const src = join(d, 'state.raw');
    await sparseFile(src, 16 << 20);
    await compressSparse(src, join(d, 'state.zst'));
    const older = await readFile(join(d, 'state.zst'));
    older.write('WVMSPZ01', 0, 'latin1');
    await writeFile(join(d, 'older.zst'), older);
    await expect(decompressSparse(join(d, 'older.zst'), join(d, 'c.raw'))).rejects.toMatchObject({
      code: 'E_SNAPSHOT_CORRUPT',
      message: expect.stringContaining('another warmvm format (WVMSPZ01'),
    });
  });

  it('handles a file that is all hole, and one with no hole', async () => {
    const d = await dir();
    await writeFile(join(d, 'empty'), '');
    await truncate(join(d, 'empty'), 64 << 20);
    await compressSparse(join(d, 'empty'), join(d, 'empty.zst'));
    await decompressSparse(join(d, 'empty.zst'), join(d, 'empty.out'));
    expect((await stat(join(d, 'empty.out'))).size).toBe(64 << 20);
    expect((await stat(join(d, 'empty.out'))).blocks).toBe(0);
    const full = randomBytes(3 << 20);
    await writeFile(join(d, 'full'), full);
    await compressSparse(join(d, 'full'), join(d, 'full.zst'));
    await decompressSparse(join(d, 'full.zst'), join(d, 'full.out'));
    expect((await readFile(join(d, 'full.out'))).equals(full)).toBe(true);
  });

  it('a truncated or damaged .zst is refused as corrupt, leaving no output and no temp file', async () => {
    const d = await dir();
    const src = join(d, 'state.raw');
    await sparseFile(src, 64 << 20);
    const zst = join(d, 'state.zst');
    await compressSparse(src, zst);
    const whole = await readFile(zst);
    await writeFile(join(d, 'short.zst'), whole.subarray(0, Math.floor(whole.length / 2)));
    await expect(decompressSparse(join(d, 'short.zst'), join(d, 'a.raw'))).rejects.toMatchObject({ code: 'E_SNAPSHOT_CORRUPT', message: expect.stringContaining('truncated') });
    const flipped = Buffer.from(whole);
    for (let i = Math.floor(flipped.length / 2); i < Math.floor(flipped.length / 2) + 32; i += 1) flipped[i] = (flipped[i] ?? 0) ^ 0xff;
    await writeFile(join(d, 'flipped.zst'), flipped);
    await expect(decompressSparse(join(d, 'flipped.zst'), join(d, 'b.raw'))).rejects.toMatchObject({ code: 'E_SNAPSHOT_CORRUPT' });
    expect(existsSync(join(d, 'a.raw')) || existsSync(join(d, 'b.raw'))).toBe(false);
    expect((await readdir(d)).filter((name) => name.includes('.tmp-'))).toEqual([]);
  });

  it('an aborted compression leaves no temp file', async () => {
    const d = await dir();
    await sparseFile(join(d, 'state.raw'));
    const controller = new AbortController();
    controller.abort();
    await expect(compressSparse(join(d, 'state.raw'), join(d, 'state.zst'), { signal: controller.signal })).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect((await readdir(d)).sort()).toEqual(['state.raw']);
  });

  it('reads filefrag extents, skipping unwritten ones, and merges neighbours', () => {
    const output = [
      'File size of x is 104857600 (25600 blocks of 4096 bytes)',
      ' ext:     logical_offset:        physical_offset: length:   expected: flags:',
      '   0:        0..       1:      100..       101:      2:',
      '   1:        2..       3:      200..       201:      2:             ',
      '   2:      100..     199:      300..       399:    100:             unwritten',
      '   3:    12800..   13055:        0..         0:      0:             last,unknown_loc,delalloc',
    ].join('\n');
    expect(parseFilefrag(output, 104857600)).toEqual([
      { offset: 0, length: 4 * 4096 },
      { offset: 12800 * 4096, length: 256 * 4096 },
    ]);
    expect(
      mergeExtents([
        { offset: 10, length: 5 },
        { offset: 0, length: 10 },
      ]),
    ).toEqual([{ offset: 0, length: 15 }]);
  });
});
