/**
 * What `--inspect` costs a start: `warmvm start` (a resume of the demo guest) with and without
 * the live inspector page, alternating A B A B in one run so a shared machine's drift hits both
 * alike (A B B A, so neither always goes first). With --inspect a watcher reads the page's event
 * stream from the moment its URL is printed, as an open browser tab would. The command stays up
 * after the run (until Ctrl-C), so a start's time is taken when its result line appears.
 * Guest-side phases (rotating, probing: the TCG guest's own work, 0.5–0.8 s from run to run) swamp
 * a few milliseconds of host work, so the host-side part of start's total is also compared: the
 * total less those phases, which is what the inspector could slow.
 *   node dist/bench/inspect-overhead.js [--runs N]
 */
import { get } from 'node:http';
import { join } from 'node:path';
import { execa } from 'execa';
import { projectRoot } from '../adapters/support/project-root.js';
import { resolveHome } from '../adapters/instance/paths.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { helpIfAsked } from './argv.js';

helpIfAsked(import.meta.url);

const runs = parseRuns(process.argv, 15);
const cli = join(projectRoot(), 'dist', 'bin', 'warmvm.js');
const env = { WARMVM_HOME: resolveHome() };
const name = 'bench-inspect';

interface Timed {
  wall: number;
  total: number;
  /** start's total less the phases the guest spends its own time in. */
  host: number;
  phases: Record<string, number>;
}

/** Phases whose length is the guest's work under TCG, not warmvm's. */
const guestPhases = ['resume.rotating', 'resume.probing'];

/** Reads the page's server-sent events as a browser tab would, until the start is over. */
function watch(url: string): () => number {
  let received = 0;
  const request = get(`${url}events`, (response) => response.on('data', (chunk: Buffer) => (received += chunk.length)));
  request.on('error', () => undefined);
  return () => {
    request.destroy();
    return received;
  };
}

/** One start: seconds until its JSON result, and its own `seconds.total`. Ends an inspector with SIGINT. */
async function start(inspect: boolean): Promise<Timed> {
  const began = performance.now();
  const child = execa('node', [cli, 'start', '--name', name, '--json', ...(inspect ? ['--inspect'] : [])], { env, reject: false, stdin: 'ignore' });
  let buffered = '';
  let stopWatching: (() => number) | undefined;
  let errText = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    errText += chunk.toString();
    const url = /inspector at (http:\/\/\S+\/)/.exec(errText)?.[1];
    if (url && !stopWatching) stopWatching = watch(url);
  });
  const result = await new Promise<{ wall: number; json: { outcome?: string; path?: string; seconds?: Record<string, number> } }>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const line = buffered.split('\n').find((text) => text.startsWith('{'));
      if (line) resolve({ wall: (performance.now() - began) / 1000, json: JSON.parse(line) as never });
    });
    void child.then((ended) => reject(new Error(`warmvm start ended without a result: ${String(ended.stderr)}`)));
  });
  if (inspect) {
    if (!stopWatching || stopWatching() === 0) throw new Error(`--inspect printed no page URL, or its event stream sent nothing: ${errText}`);
    child.kill('SIGINT');
  }
  await child;
  await execa('node', [cli, 'stop', '--name', name], { env, reject: false });
  if (result.json.outcome !== 'healthy' || result.json.path !== 'resume') throw new Error(`expected a healthy resume, got ${JSON.stringify(result.json)}`);
  const phases = result.json.seconds ?? {};
  const total = phases.total ?? Number.NaN;
  const guest = guestPhases.reduce((sum, phase) => sum + (phases[phase] ?? Number.NaN), 0);
  return { wall: result.wall, total, host: total - guest, phases };
}

await execa('node', [cli, 'stop', '--name', name], { env, reject: false });
await execa('node', [cli, 'reset', '--name', name, '--snapshot'], { env, reject: false });
const primed = await execa('node', [cli, 'start', '--name', name, '--json'], { env, reject: false });
if (!primed.stdout.includes('"healthy"')) throw new Error(`priming failed: ${primed.stdout} ${primed.stderr}`);
await execa('node', [cli, 'stop', '--name', name], { env, reject: false });

const plain: Timed[] = [];
const watched: Timed[] = [];
for (let i = 0; i < runs; i += 1) {
  const inspectFirst = i % 2 === 1;
  if (inspectFirst) watched.push(await start(true));
  plain.push(await start(false));
  if (!inspectFirst) watched.push(await start(true));
  process.stderr.write(`  run ${i + 1}/${runs}: without ${plain.at(-1)?.wall.toFixed(3)} s, with --inspect ${watched.at(-1)?.wall.toFixed(3)} s\n`);
}
const ratio = (a: Timed[], b: Timed[], key: 'wall' | 'total' | 'host') => a.map((entry, index) => (b[index] as Timed)[key] / entry[key]);
console.log(`warmvm start (resume, demo guest, TCG) with and without --inspect, ${runs} runs`);
console.log(formatSummary('without: until the result', summarize(plain.map((entry) => entry.wall))));
console.log(formatSummary('--inspect: until the result', summarize(watched.map((entry) => entry.wall))));
console.log(formatSummary('ratio --inspect / without (wall)', summarize(ratio(plain, watched, 'wall')), '×'));
console.log(formatSummary("without: start's own total", summarize(plain.map((entry) => entry.total))));
console.log(formatSummary("--inspect: start's own total", summarize(watched.map((entry) => entry.total))));
console.log(formatSummary('ratio --inspect / without (total)', summarize(ratio(plain, watched, 'total')), '×'));
console.log(formatSummary('without: host-side', summarize(plain.map((entry) => entry.host))));
console.log(formatSummary('--inspect: host-side', summarize(watched.map((entry) => entry.host))));
console.log(formatSummary('ratio --inspect / without (host)', summarize(ratio(plain, watched, 'host')), '×'));
const median = (values: number[]) => summarize(values).median;
console.log('per phase, median seconds (without → --inspect):');
for (const phase of Object.keys(plain[0]?.phases ?? {})) {
  const of = (sample: Timed[]) => median(sample.map((entry) => entry.phases[phase] ?? Number.NaN)).toFixed(3);
  console.log(`  ${phase.padEnd(20)} ${of(plain)} → ${of(watched)}`);
}
for (const key of ['wall', 'total', 'host'] as const) {
  const overhead = median(watched.map((entry) => entry[key])) / median(plain.map((entry) => entry[key])) - 1;
  console.log(`overhead of --inspect, ratio of medians (${key}): ${overhead >= 0 ? '+' : ''}${(overhead * 100).toFixed(1)}%`);
}
