/**
 * `warmvm start` resuming to healthy (rotation included) against `warmvm start --cold` to healthy
 * (rotation included), on the demo guest, alternating A B A B in one run so the drift of a shared
 * machine hits both alike; and resume time as guest RAM grows (256 MB, 1 GB, 4 GB).
 *   node dist/bench/start-paths.js [--runs N] [--sizes 256,1024,4096]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { resolveHome } from '../adapters/instance/paths.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { CLI as cli, startedHealthy, type Started } from './warmvm-run.js';
import { helpIfAsked } from './argv.js';

helpIfAsked(import.meta.url);

const runs = parseRuns(process.argv, 5);
const sizesArg = process.argv.indexOf('--sizes');
const sizes = sizesArg >= 0 ? (process.argv[sizesArg + 1] ?? '').split(',').map(Number) : [256, 1024, 4096];
const home = resolveHome();

const warmvm = (args: string[]): Promise<Started> => startedHealthy(home, args);

async function stop(name: string): Promise<void> {
  await execa('node', [cli, 'stop', '--name', name], { reject: false, env: { WARMVM_HOME: home } });
}

async function configFor(memoryMb: number): Promise<string> {
  const dir = join(home, 'bench');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `demo-${memoryMb}.json`);
  await writeFile(file, JSON.stringify({ memoryMb }));
  return file;
}

/** A first start makes the snapshot that later starts resume. */
async function prime(name: string, config: string): Promise<void> {
  await stop(name);
  await execa('node', [cli, 'reset', '--name', name, '--snapshot'], { reject: false, env: { WARMVM_HOME: home } });
  const first = await warmvm(['start', '--name', name, '--config', config]);
  process.stderr.write(`  primed ${name}: ${first.path} in ${first.wall.toFixed(2)} s\n`);
  await stop(name);
}

const base = await configFor(256);
await prime('bench-resume', base);
const cold: number[] = [];
const warm: number[] = [];
const ratios: number[] = [];
const phases: Record<string, number[]> = {};
for (let i = 0; i < runs; i += 1) {
  const a = await warmvm(['start', '--cold', '--name', 'bench-cold', '--config', base]);
  await stop('bench-cold');
  const b = await warmvm(['start', '--name', 'bench-resume', '--config', base]);
  await stop('bench-resume');
  if (b.path !== 'resume') throw new Error(`expected a resume, got ${b.path}`);
  cold.push(a.wall);
  warm.push(b.wall);
  ratios.push(a.wall / b.wall);
  for (const [phase, value] of Object.entries(b.seconds)) (phases[phase] ??= []).push(value);
  process.stderr.write(`  run ${i + 1}/${runs}: cold ${a.wall.toFixed(2)} s, resume ${b.wall.toFixed(2)} s\n`);
}
console.log(`warmvm start on the demo guest (256 MB, TCG, rotation on), ${runs} runs, whole CLI process`);
console.log(formatSummary('start --cold → healthy', summarize(cold)));
console.log(formatSummary('start (resume) → healthy', summarize(warm)));
console.log(formatSummary('speed-up cold / resume (per pair)', summarize(ratios), '×'));
console.log('resume phases (seconds, as start --json reports them):');
for (const [phase, values] of Object.entries(phases)) console.log('  ' + formatSummary(phase, summarize(values)));

const bySize: { size: number; median: number }[] = [];
for (const size of sizes) {
  const config = await configFor(size);
  const name = `bench-ram-${size}`;
  await prime(name, config);
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const b = await warmvm(['start', '--name', name, '--config', config]);
    await stop(name);
    times.push(b.seconds.total ?? b.wall);
  }
  const summary = summarize(times);
  bySize.push({ size, median: summary.median });
  console.log(formatSummary(`resume → healthy, ${size} MB guest (start's own total)`, summary));
}
if (bySize.length > 1) {
  const medians = bySize.map((entry) => entry.median);
  console.log(`largest / smallest resume median across RAM sizes: ${(Math.max(...medians) / Math.min(...medians)).toFixed(2)}×`);
}
