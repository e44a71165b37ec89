/**
 * The Debian profile (systemd, docker, the workload in a container) in one run: cold boot to
 * healthy, a first start (cold + capture + resume), resume to healthy with rotation (inside the
 * container, through the agent and `docker exec`), and resume without rotation. Resumes alternate
 * with and without rotation so a shared machine's drift hits both alike. The image is built first
 * when missing (minutes; not timed).
 *   node dist/bench/debian-profile.js [--runs N]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { resolveHome } from '../adapters/instance/paths.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { CLI as cli, startedHealthy, type Started } from './warmvm-run.js';
import { helpIfAsked } from './argv.js';

helpIfAsked(import.meta.url);

const runs = parseRuns(process.argv, 3);
const home = resolveHome();
const name = 'bench-debian';

const warmvm = (args: string[]): Promise<Started> => startedHealthy(home, args);

const control = (args: string[]) => execa('node', [cli, ...args], { reject: false, env: { WARMVM_HOME: home } });

const dir = join(home, 'bench');
await mkdir(dir, { recursive: true });
const config = join(dir, 'debian.json');
await writeFile(config, JSON.stringify({ image: { profile: 'debian' } }));
process.stderr.write('  building the Debian guest when missing (not timed)\n');
const built = await execa('node', [cli, 'guest', 'build', '--profile', 'debian'], { reject: false, env: { WARMVM_HOME: home }, stdio: ['ignore', 'inherit', 'inherit'] });
if (built.exitCode !== 0) throw new Error('warmvm guest build --profile debian failed');

const cold: number[] = [];
const first: number[] = [];
const rotated: number[] = [];
const unrotated: number[] = [];
const phases: Record<string, number[]> = {};
for (let i = 0; i < runs; i += 1) {
  await control(['stop', '--name', name]);
  const a = await warmvm(['start', '--cold', '--no-capture', '--name', name, '--config', config]);
  cold.push(a.wall);
  await control(['stop', '--name', name]);
  await control(['reset', '--name', name, '--snapshot']);
  const b = await warmvm(['start', '--name', name, '--config', config]);
  if (b.path !== 'cold+capture+resume') throw new Error(`expected a first start, got ${b.path}`);
  first.push(b.wall);
  for (const [phase, value] of Object.entries(b.seconds)) (phases[phase] ??= []).push(value);
  await control(['stop', '--name', name]);
  const c = await warmvm(['start', '--name', name, '--config', config]);
  await control(['stop', '--name', name]);
  const d = await warmvm(['start', '--no-rotation', '--name', name, '--config', config]);
  await control(['stop', '--name', name]);
  if (c.path !== 'resume' || d.path !== 'resume') throw new Error(`expected resumes, got ${c.path} and ${d.path}`);
  rotated.push(c.wall);
  unrotated.push(d.wall);
  for (const [phase, value] of Object.entries(c.seconds)) if (phase.startsWith('resume.')) (phases[`rotated ${phase}`] ??= []).push(value);
  process.stderr.write(
    `  run ${i + 1}/${runs}: cold ${a.wall.toFixed(1)} s, first ${b.wall.toFixed(1)} s, resume ${c.wall.toFixed(2)} s, resume without rotation ${d.wall.toFixed(2)} s\n`,
  );
}
const median = (values: number[]) => summarize(values).median;
console.log(`warmvm on the Debian profile (1 GB, 2 vCPUs, TCG, workload in docker), ${runs} runs, whole CLI process`);
console.log(formatSummary('cold boot → healthy', summarize(cold)));
console.log(formatSummary('first start (cold+capture+resume)', summarize(first)));
console.log(formatSummary('resume → healthy, rotation', summarize(rotated)));
console.log(formatSummary('resume → healthy, no rotation', summarize(unrotated)));
console.log(`speed-up cold / resume with rotation: ${(median(cold) / median(rotated)).toFixed(1)}×, without: ${(median(cold) / median(unrotated)).toFixed(1)}×`);
console.log('phases (seconds, as start --json reports them):');
for (const [phase, values] of Object.entries(phases)) console.log('  ' + formatSummary(phase, summarize(values)));
