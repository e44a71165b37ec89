/**
 * Packing and unpacking a sparse memory file (how a snapshot will travel): warmvm's sparse zstd
 * against the zstd command line on the same file, in one run, alternating. The file is a real
 * snapshot's when one exists ($WARMVM_HOME/snapshots/<key>/mem.raw, --key, default the first),
 * else a synthetic 4 GiB file with 150 MB of data.
 *   node dist/bench/sparse-zstd.js [--runs N] [--key KEY]
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { homePaths, resolveHome } from '../adapters/instance/paths.js';
import { fileExists } from '../adapters/support/file-exists.js';
import { listSnapshotKeys, snapshotPaths } from '../adapters/snapshot/store.js';
import { compressSparse, decompressSparse } from '../adapters/snapshot/sparse-zstd.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { helpIfAsked } from './argv.js';

helpIfAsked(import.meta.url);

const runs = parseRuns(process.argv, 3);
// Not `4 << 30`: JavaScript's shifts are 32-bit, and that is 0.
const SYNTHETIC_BYTES = 4 * 2 ** 30;
const keyArg = process.argv.indexOf('--key');
const home = resolveHome();
const work = join(home, 'bench', 'sparse');
await mkdir(work, { recursive: true });

async function source(): Promise<string> {
  const key = keyArg >= 0 ? process.argv[keyArg + 1] : (await listSnapshotKeys(homePaths(home).snapshots))[0];
  const real = key === undefined ? undefined : snapshotPaths(homePaths(home).snapshots, key).memory;
  if (real !== undefined && (await fileExists(real))) return real;
  const file = join(work, 'synthetic.raw');
  const handle = await open(file, 'w');
  await handle.truncate(SYNTHETIC_BYTES);
  // 150 pieces of 1 MiB, half random, half repetitive, spread over 4 GiB.
  for (let i = 0; i < 150; i += 1) {
    const data = i % 2 === 0 ? randomBytes(1 << 20) : Buffer.alloc(1 << 20, `page ${i} `);
    await handle.write(data, 0, data.length, Math.floor((i / 150) * (SYNTHETIC_BYTES - (1 << 20))));
  }
  await handle.close();
  return file;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

const src = await source();
const info = await stat(src);
const zstCli = join(work, 'cli.zst');
const zstOurs = join(work, 'ours.zst');
const outCli = join(work, 'cli.raw');
const outOurs = join(work, 'ours.raw');
const compress: { ours: number[]; cli: number[]; ratio: number[] } = { ours: [], cli: [], ratio: [] };
const decompress: { ours: number[]; cli: number[]; ratio: number[] } = { ours: [], cli: [], ratio: [] };
for (let i = 0; i < runs; i += 1) {
  await rm(zstCli, { force: true });
  const a = await timed(() => compressSparse(src, zstOurs));
  const b = await timed(() => execa('zstd', ['-q', '-3', '-T1', '-f', src, '-o', zstCli]));
  compress.ours.push(a);
  compress.cli.push(b);
  compress.ratio.push(a / b);
  await rm(outCli, { force: true });
  await rm(outOurs, { force: true });
  const c = await timed(() => decompressSparse(zstOurs, outOurs));
  // zstd -d writes holes for zero runs by default (--sparse when the output is a file).
  const d = await timed(() => execa('zstd', ['-q', '-d', '-f', zstCli, '-o', outCli]));
  decompress.ours.push(c);
  decompress.cli.push(d);
  decompress.ratio.push(c / d);
}
const sizes = { src: info.blocks * 512, ours: (await stat(outOurs)).blocks * 512, cli: (await stat(outCli)).blocks * 512 };
console.log(`sparse state ${src}: ${(info.size / 2 ** 20).toFixed(0)} MiB apparent, ${(sizes.src / 2 ** 20).toFixed(0)} MiB allocated; ${runs} runs`);
console.log(formatSummary('compress: warmvm sparse zstd', summarize(compress.ours)));
console.log(formatSummary('compress: zstd -3 -T1 (whole file)', summarize(compress.cli)));
console.log(formatSummary('compress ratio warmvm / zstd', summarize(compress.ratio), '×'));
console.log(formatSummary('decompress: warmvm sparse zstd', summarize(decompress.ours)));
console.log(formatSummary('decompress: zstd -d', summarize(decompress.cli)));
console.log(formatSummary('decompress ratio warmvm / zstd -d', summarize(decompress.ratio), '×'));
console.log(
  `allocated after restore: warmvm ${(sizes.ours / 2 ** 20).toFixed(1)} MiB, zstd -d ${(sizes.cli / 2 ** 20).toFixed(1)} MiB, original ${(sizes.src / 2 ** 20).toFixed(1)} MiB`,
);
console.log(`compressed: warmvm ${((await stat(zstOurs)).size / 2 ** 20).toFixed(1)} MiB, zstd ${((await stat(zstCli)).size / 2 ** 20).toFixed(1)} MiB`);
await rm(work, { recursive: true, force: true });
