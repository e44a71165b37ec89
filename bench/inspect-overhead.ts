/**
 * What `--inspect` costs a start: `warmvm start` (a resume of the demo guest) with and without
 * the live inspector page, alternating A B A B in one run so a shared machine's drift hits both
 * alike. With --inspect the command stays up after the run (until Ctrl-C), so a start's time is
 * taken when its result line appears; the page is served throughout.
 *   node dist/bench/inspect-overhead.js [--runs N]
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { projectRoot } from '../adapters/project-root.js';
import { resolveHome } from '../adapters/paths.js';
import { formatSummary, parseRuns, summarize } from './stats.js';

const runs = parseRuns(process.argv, 7);
const cli = join(projectRoot(), 'dist', 'bin', 'warmvm.js');
const env = { WARMVM_HOME: resolveHome() };
const name = 'bench-inspect';

interface Timed {
  wall: number;
  total: number;
}

/** One start: seconds until its JSON result, and its own `seconds.total`. Ends an inspector with SIGINT. */
async function start(inspect: boolean): Promise<Timed> {
  const began = performance.now();
  const child = execa('node', [cli, 'start', '--name', name, '--json', ...(inspect ? ['--inspect'] : [])], { env, reject: false, stdin: 'ignore' });
  let buffered = '';
  const result = await new Promise<{ wall: number; json: { outcome?: string; path?: string; seconds?: { total?: number } } }>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const line = buffered.split('\n').find((text) => text.startsWith('{'));
      if (line) resolve({ wall: (performance.now() - began) / 1000, json: JSON.parse(line) as never });
    });
    void child.then((ended) => reject(new Error(`warmvm start ended without a result: ${String(ended.stderr)}`)));
  });
  if (inspect) child.kill('SIGINT');
  await child;
  await execa('node', [cli, 'stop', '--name', name], { env, reject: false });
  if (result.json.outcome !== 'healthy' || result.json.path !== 'resume') throw new Error(`expected a healthy resume, got ${JSON.stringify(result.json)}`);
  return { wall: result.wall, total: result.json.seconds?.total ?? Number.NaN };
}

await execa('node', [cli, 'stop', '--name', name], { env, reject: false });
await execa('node', [cli, 'reset', '--name', name, '--snapshot'], { env, reject: false });
const primed = await execa('node', [cli, 'start', '--name', name, '--json'], { env, reject: false });
if (!primed.stdout.includes('"healthy"')) throw new Error(`priming failed: ${primed.stdout} ${primed.stderr}`);
await execa('node', [cli, 'stop', '--name', name], { env, reject: false });

const plain: Timed[] = [];
const watched: Timed[] = [];
for (let i = 0; i < runs; i += 1) {
  plain.push(await start(false));
  watched.push(await start(true));
  process.stderr.write(`  run ${i + 1}/${runs}: without ${plain.at(-1)?.wall.toFixed(3)} s, with --inspect ${watched.at(-1)?.wall.toFixed(3)} s\n`);
}
const ratio = (a: Timed[], b: Timed[], key: keyof Timed) => a.map((entry, index) => (b[index] as Timed)[key] / entry[key]);
console.log(`warmvm start (resume, demo guest, TCG) with and without --inspect, ${runs} runs`);
console.log(formatSummary('without: until the result', summarize(plain.map((entry) => entry.wall))));
console.log(formatSummary('--inspect: until the result', summarize(watched.map((entry) => entry.wall))));
console.log(formatSummary('ratio --inspect / without (wall)', summarize(ratio(plain, watched, 'wall')), '×'));
console.log(formatSummary("without: start's own total", summarize(plain.map((entry) => entry.total))));
console.log(formatSummary("--inspect: start's own total", summarize(watched.map((entry) => entry.total))));
console.log(formatSummary('ratio --inspect / without (total)', summarize(ratio(plain, watched, 'total')), '×'));
