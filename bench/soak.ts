/**
 * A soak: does anything pile up over many start/stop cycles? In ONE run, on the demo guest:
 *   1. --cycles (default 200) cycles of `warmvm start` (resuming the config's snapshot) and
 *      `warmvm stop` of one instance;
 *   2. --clone-cycles (default 50) cycles of three instances of that config started at once, then
 *      stopped at once.
 * Before the first cycle, after each tenth and after the last, it samples what could leak: open
 * file descriptors and processes (all of the machine's, and QEMUs under the home, which must be 0
 * between cycles), the home's disk use (du, in KB: its instance folders and the store; images
 * excluded) and its files. It prints those samples, and the start wall times of the first and the
 * last 10% of the cycles with their ratio (last / first: > 1 means starts grew slower).
 * Figures only, no pass/fail. Its own home: $WARMVM_HOME or /tmp/warmvm-bench-soak (the images are
 * kept between runs). Every instance is stopped on the way out, Ctrl-C included.
 *   node dist/bench/soak.js [--cycles 200] [--clone-cycles 50]
 */
import { readdir } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { helpIfAsked, option } from './argv.js';
import { cleanUpOnce, endQemusUnder, qemusUnderHomes } from './bench-cleanup.js';
import { progress } from './progress.js';
import { formatSummary, summarize } from './stats.js';
import { CLI, startedHealthy, warmvmJson } from './warmvm-run.js';

helpIfAsked(import.meta.url);

const cycles = Number(option('--cycles') ?? 200);
const cloneCycles = Number(option('--clone-cycles') ?? 50);
for (const [flag, value] of [
  ['--cycles', cycles],
  ['--clone-cycles', cloneCycles],
] as const) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} takes a whole number ≥ 1`);
}
// Not resolveHome(): its fallback is the user's ~/.warmvm, which a bench must never touch.
const home = resolve(process.env.WARMVM_HOME?.trim() || '/tmp/warmvm-bench-soak');
const ONE = 'soak';
const CLONES = ['soak-a', 'soak-b', 'soak-c'];

interface Sample {
  at: string;
  /** Open descriptors of every process the machine has, and the processes themselves. */
  fds: number;
  processes: number;
  /** QEMUs whose command line names the home: none may be left between cycles. */
  qemus: number;
  /** KB the home's instance folders and store take (du), and how many files they hold. */
  homeKb: number;
  homeFiles: number;
}

async function sample(at: string): Promise<Sample> {
  let fds = 0;
  let processes = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    processes += 1;
    fds += (await readdir(`/proc/${entry}/fd`).catch(() => [] as string[])).length;
  }
  const folders = ['instances', 'snapshots'].map((folder) => join(home, folder));
  const du = await execa('du', ['-sk', '--total', ...folders], { reject: false });
  const homeKb = Number(/(\d+)\s+total/.exec(du.stdout)?.[1] ?? NaN);
  let homeFiles = 0;
  for (const folder of folders) homeFiles += (await readdir(folder, { recursive: true }).catch(() => [] as string[])).length;
  return { at, fds, processes, qemus: (await qemusUnderHomes([home])).length, homeKb, homeFiles };
}

const stop = async (name: string): Promise<void> => {
  const run = await warmvmJson(CLI, home, ['stop', '--name', name]);
  if (run.json.outcome !== 'stopped') throw new Error(`warmvm stop --name ${name}: ${JSON.stringify(run.json)} ${run.stderr}`);
};

const cleanUp = cleanUpOnce(async () => {
  for (const name of [ONE, ...CLONES]) await warmvmJson(CLI, home, ['stop', '--name', name]).catch(() => undefined);
  await endQemusUnder([home], (qemu) => progress(`clean-up: QEMU pid ${qemu.pid} still runs under ${home}, terminating it`));
});

/** Start walls of the first and the last tenth (at least one each), and last / first of their medians. */
function drift(label: string, walls: number[]): string[] {
  const tenth = Math.max(1, Math.floor(walls.length / 10));
  const first = summarize(walls.slice(0, tenth));
  const last = summarize(walls.slice(-tenth));
  return [
    formatSummary(`${label}, first ${tenth}`, first),
    formatSummary(`${label}, last ${tenth}`, last),
    `${'  last / first (medians)'.padEnd(34)} ${(last.median / first.median).toFixed(3)} ×`,
  ];
}

try {
  const load = loadavg().map((value) => value.toFixed(2));
  progress(`priming ${ONE} in ${home}: a first start (cold boot, capture, resume; builds the guest when missing), untimed`);
  const primed = await startedHealthy(home, ['start', '--name', ONE]);
  await stop(ONE);
  progress(`primed (${primed.path}, ${primed.wall.toFixed(2)} s)`);
  const samples: Sample[] = [await sample('before')];
  const walls: number[] = [];
  for (let cycle = 1; cycle <= cycles; cycle += 1) {
    const started = await startedHealthy(home, ['start', '--name', ONE]);
    if (started.path !== 'resume') throw new Error(`cycle ${cycle}: expected a resume, got ${started.path}`);
    walls.push(started.wall);
    await stop(ONE);
    if (cycle % Math.max(1, Math.floor(cycles / 10)) === 0 || cycle === cycles) {
      samples.push(await sample(`one, cycle ${cycle}`));
      progress(`one instance: cycle ${cycle}/${cycles}, start ${started.wall.toFixed(2)} s`);
    }
  }
  const cloneWalls: number[] = [];
  for (let cycle = 1; cycle <= cloneCycles; cycle += 1) {
    const started = await Promise.all(CLONES.map((name) => startedHealthy(home, ['start', '--name', name])));
    cloneWalls.push(Math.max(...started.map((one) => one.wall)));
    await Promise.all(CLONES.map(stop));
    if (cycle % Math.max(1, Math.floor(cloneCycles / 10)) === 0 || cycle === cloneCycles) {
      samples.push(await sample(`clones, cycle ${cycle}`));
      progress(`three clones: cycle ${cycle}/${cloneCycles}, slowest start ${cloneWalls.at(-1)?.toFixed(2)} s`);
    }
  }
  console.log(`warmvm soak on the demo guest: ${cycles} start/stop cycles of one instance, ${cloneCycles} of three clones at once; home ${home}`);
  console.log(
    `${cpus().length} cores, load average ${load.join(' ')} at start, ${loadavg()
      .map((value) => value.toFixed(2))
      .join(' ')} at end\n`,
  );
  console.log(`${'sample'.padEnd(20)} ${'fds'.padStart(7)} ${'procs'.padStart(6)} ${'qemus'.padStart(6)} ${'home KB'.padStart(9)} ${'files'.padStart(6)}`);
  for (const s of samples)
    console.log(
      `${s.at.padEnd(20)} ${String(s.fds).padStart(7)} ${String(s.processes).padStart(6)} ${String(s.qemus).padStart(6)} ${String(s.homeKb).padStart(9)} ${String(s.homeFiles).padStart(6)}`,
    );
  const [first, last] = [samples[0] as Sample, samples.at(-1) as Sample];
  console.log(
    `\nend − before: ${last.fds - first.fds} fds, ${last.processes - first.processes} processes, ${last.qemus - first.qemus} QEMUs, ${last.homeKb - first.homeKb} KB, ${last.homeFiles - first.homeFiles} files\n`,
  );
  for (const line of [...drift('one instance: start wall', walls), ...drift('three clones: slowest start wall', cloneWalls)]) console.log(line);
} finally {
  await cleanUp();
}
