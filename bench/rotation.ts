/**
 * Issue 15, "rotation for almost nothing": what rotating the secrets costs a resume, in figures
 * (no pass/fail). Whole CLI processes, each start followed by `warmvm stop`, alternating in ONE run
 * (A B C N, then B C N A, …: the order turns each round, so a shared machine's drift hits all alike):
 *   A. `warmvm start` resuming the snapshot with rotation (must be path `resume`, rotated true);
 *   B. `warmvm start --no-rotation` (path `resume`, rotated false);
 *   C. `warmvm start --cold --no-capture` (path `cold`), in the first --cold-runs rounds only
 *      (default: every round for demo, 3 for debian, whose cold boot is ~45 s);
 *   N. `node -e 0`, the floor of any Node process, for what A spends outside start's own total.
 * Per path: median and spread of the wall seconds, of start's own `seconds.total` (--json) and of
 * its phases resume.rotating, resume.probing, resume.cont. Ratios taken pair by pair within a
 * round: A/B wall (target ≤ 1.25× demo, ≤ 1.5× debian), cold/A wall (target ≥ 7× demo, ≥ 20×
 * debian), A/B of start's own total; and A's wall minus A's own total against `node -e 0`'s wall
 * (target ≤ node -e 0 + 25 ms).
 * First, untimed: stop, `reset --name bench-rotation --snapshot`, one first start
 * (cold+capture+resume, building the guest when missing; a resume when another instance of the
 * config captured one), stop. Home: resolveHome() (WARMVM_HOME,
 * else ~/.warmvm); the Debian profile's config is written there, in bench/rotation-debian.json
 * (the demo guest needs none). The instance is stopped on every way out, Ctrl-C included.
 *   node dist/bench/rotation.js [--runs N] [--profile demo|debian] [--cold-runs M]
 * Defaults: 10 runs for demo, 5 for debian.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { instancePaths, resolveHome } from '../adapters/instance/paths.js';
import { helpIfAsked, option } from './argv.js';
import { cleanUpOnce, endQemusUnder } from './bench-cleanup.js';
import { progress } from './progress.js';
import { instanceSnapshotSealed } from './sealed.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { CLI, type CliRun, warmvmJson } from './warmvm-run.js';

helpIfAsked(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Arguments

const profile = option('--profile') ?? 'demo';
if (profile !== 'demo' && profile !== 'debian') throw new Error('--profile takes demo or debian');
const debian = profile === 'debian';
const runs = parseRuns(process.argv, debian ? 5 : 10);
const coldRunsArg = option('--cold-runs');
const coldRuns = coldRunsArg === undefined ? (debian ? Math.min(3, runs) : runs) : Number(coldRunsArg);
if (!Number.isInteger(coldRuns) || coldRuns < 0) throw new Error('--cold-runs takes a whole number ≥ 0');
const targets = debian ? { ab: 1.5, coldA: 20 } : { ab: 1.25, coldA: 7 };
/** What A may spend outside start's own total, beyond a bare `node -e 0`. */
const OUTSIDE_MARGIN_S = 0.025;

const home = resolveHome();
const NAME = 'bench-rotation';
const instanceDir = instancePaths(home, NAME).dir;

// ---------------------------------------------------------------------------------------------
// The CLI

const command = (args: string[]): string => `WARMVM_HOME=${home} node ${CLI} ${args.join(' ')} --json`;

/** Set while the instance may be running: the clean-up then stops it. */
let mayRun = false;

async function stop(): Promise<void> {
  const run = await warmvmJson(CLI, home, ['stop', '--name', NAME]);
  if (run.json.outcome !== 'stopped') throw new Error(`${command(['stop', '--name', NAME])}: ${JSON.stringify(run.json)} ${run.stderr}`);
  mayRun = false;
}

async function configArgs(): Promise<string[]> {
  if (!debian) return [];
  const dir = join(home, 'bench');
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'rotation-debian.json');
  await writeFile(file, JSON.stringify({ image: { profile: 'debian' } }));
  return ['--config', file];
}

/** One start, as the CLI reports it: wall, start's own seconds (total and phases), path, rotated. */
interface Start {
  wall: number;
  seconds: Record<string, number>;
  path: string;
  rotated: boolean;
}

/** A start that must end healthy by `path` (and, when given, with `rotated` so), then its stop. */
async function startThenStop(extra: string[], config: string[], path: string | string[], rotated?: boolean): Promise<Start> {
  const args = ['start', '--name', NAME, ...extra, ...config];
  mayRun = true;
  const run: CliRun = await warmvmJson(CLI, home, args);
  const json = run.json;
  if (json.outcome !== 'healthy') throw new Error(`${command(args)}: ${JSON.stringify(json.error ?? json)} ${run.stderr}`);
  await stop();
  const started: Start = { wall: run.wall, seconds: (json.seconds ?? {}) as Record<string, number>, path: String(json.path), rotated: json.rotated === true };
  if (![path].flat().includes(started.path))
    throw new Error(`${command(args)}: expected path ${[path].flat().join(' or ')}, got ${started.path}${json.fallbackReason ? ` (${String(json.fallbackReason)})` : ''}`);
  if (rotated !== undefined && started.rotated !== rotated) throw new Error(`${command(args)}: expected rotated ${rotated}, got ${started.rotated}`);
  return started;
}

async function nodeFloor(): Promise<number> {
  const began = performance.now();
  await execa('node', ['-e', '0']);
  return (performance.now() - began) / 1000;
}

/** Stops the instance if it may run, then ends (by pid) any QEMU still running from its folder: a start cut short can leave one. */
const cleanUp = cleanUpOnce(async () => {
  if (mayRun) await stop().catch((error: unknown) => progress(`clean-up: ${(error as Error).message.slice(0, 300)}`));
  await endQemusUnder([instanceDir], (qemu) => progress(`clean-up: QEMU pid ${qemu.pid} still runs from ${instanceDir}, terminating it`));
});

// ---------------------------------------------------------------------------------------------
// The run

type Kind = 'rotated' | 'unrotated' | 'cold' | 'node';
interface Round {
  rotated?: Start;
  unrotated?: Start;
  cold?: Start;
  node?: number;
}
const rounds: Round[] = [];
let primed: Start | undefined;
let failure: string | undefined;
const loadAtStart = loadavg();

try {
  const config = await configArgs();
  progress(`priming ${NAME} in ${home} (${profile}): stop, reset --snapshot, a first start (builds the guest when missing; untimed)`);
  await execa('node', [CLI, 'stop', '--name', NAME], { reject: false, env: { WARMVM_HOME: home } });
  await execa('node', [CLI, 'reset', '--name', NAME, '--snapshot'], { reject: false, env: { WARMVM_HOME: home } });
  // `reset` drops only this name's own snapshot: another instance of the config may have captured one already.
  primed = await startThenStop([], config, ['cold+capture+resume', 'resume']);
  progress(`primed: ${primed.path} in ${primed.wall.toFixed(2)} s wall`);
  // A first start that captured left the seal reading the memory file: not beside the timed runs.
  await instanceSnapshotSealed(home, NAME);
  for (let i = 0; i < runs; i += 1) {
    const kinds: Kind[] = i < coldRuns ? ['rotated', 'unrotated', 'cold', 'node'] : ['rotated', 'unrotated', 'node'];
    const order = kinds.map((_, k) => kinds[(k + i) % kinds.length] as Kind);
    const round: Round = {};
    for (const kind of order) {
      if (kind === 'rotated') round.rotated = await startThenStop([], config, 'resume', true);
      else if (kind === 'unrotated') round.unrotated = await startThenStop(['--no-rotation'], config, 'resume', false);
      else if (kind === 'cold') round.cold = await startThenStop(['--cold', '--no-capture'], config, 'cold');
      else round.node = await nodeFloor();
    }
    rounds.push(round);
    const s = (start: Start | undefined): string => (start ? `${start.wall.toFixed(3)} s (own ${(start.seconds.total ?? NaN).toFixed(3)})` : '—');
    progress(
      `run ${i + 1}/${runs} [${order.join(' ')}]: rotated ${s(round.rotated)}, --no-rotation ${s(round.unrotated)}, cold ${s(round.cold)}, node -e 0 ${(round.node ?? NaN).toFixed(3)} s`,
    );
  }
} catch (error) {
  failure = (error as Error).message;
  process.exitCode = 1;
} finally {
  await cleanUp();
}

// ---------------------------------------------------------------------------------------------
// The figures

const med = (values: number[]): number => summarize(values).median;
const starts = (kind: 'rotated' | 'unrotated' | 'cold'): Start[] => rounds.flatMap((round) => (round[kind] ? [round[kind]] : []));
/** The rounds that have both, for ratios taken pair by pair. */
const pairs = (a: 'rotated' | 'unrotated' | 'cold', b: 'rotated' | 'unrotated' | 'cold'): [Start, Start][] =>
  rounds.flatMap((round) => {
    const x = round[a];
    const y = round[b];
    return x && y ? [[x, y] as [Start, Start]] : [];
  });
const line = (label: string, values: number[], unit = 's'): void => {
  if (values.length > 0) console.log(formatSummary(label, summarize(values), unit));
};

console.log(
  `warmvm start, rotation against none, ${profile} guest, whole CLI processes, ${rounds.length} of ${runs} round(s) (cold in the first ${Math.min(coldRuns, runs)}); ` +
    `home ${home}; ${cpus().length} cores, load average ${loadAtStart.map((v) => v.toFixed(2)).join(' ')} at start, ${loadavg()
      .map((v) => v.toFixed(2))
      .join(' ')} at end`,
);
if (primed) console.log(`primed by one untimed first start: ${primed.path}, ${primed.wall.toFixed(2)} s wall`);
const paths: [string, 'rotated' | 'unrotated' | 'cold'][] = [
  ['A start (resume, rotation)', 'rotated'],
  ['B start --no-rotation (resume)', 'unrotated'],
  ['C start --cold --no-capture', 'cold'],
];
for (const [title, kind] of paths) {
  const list = starts(kind);
  if (list.length === 0) continue;
  console.log(`\n${title}`);
  line(
    '  wall',
    list.map((start) => start.wall),
  );
  line(
    "  start's own seconds.total",
    list.map((start) => start.seconds.total ?? NaN),
  );
  for (const phase of ['resume.rotating', 'resume.probing', 'resume.cont']) {
    const values = list.flatMap((start) => (start.seconds[phase] === undefined ? [] : [start.seconds[phase]]));
    if (values.length > 0) line(`  ${phase}`, values);
  }
}
const nodes = rounds.flatMap((round) => (round.node === undefined ? [] : [round.node]));
console.log('');
line('node -e 0, wall', nodes);

console.log('\nratios, pair by pair within a round');
const ab = pairs('rotated', 'unrotated');
line(
  `A/B wall (target ≤ ${targets.ab}×)`,
  ab.map(([a, b]) => a.wall / b.wall),
  '×',
);
line(
  `cold/A wall (target ≥ ${targets.coldA}×)`,
  pairs('cold', 'rotated').map(([c, a]) => c.wall / a.wall),
  '×',
);
line(
  "A/B start's own total",
  ab.map(([a, b]) => (a.seconds.total ?? NaN) / (b.seconds.total ?? NaN)),
  '×',
);

const outside = starts('rotated').map((start) => start.wall - (start.seconds.total ?? NaN));
if (outside.length > 0 && nodes.length > 0) {
  console.log("\nA's process outside start's own total (wall − seconds.total)");
  line('  A wall − A total', outside);
  line('  node -e 0, wall', nodes);
  const over = rounds.flatMap((round) => (round.rotated && round.node !== undefined ? [round.rotated.wall - (round.rotated.seconds.total ?? NaN) - round.node] : []));
  line('  (A wall − A total) − node -e 0', over);
  console.log(
    `  medians: ${(med(outside) * 1000).toFixed(0)} ms outside against node -e 0 ${(med(nodes) * 1000).toFixed(0)} ms: ` +
      `${((med(outside) - med(nodes)) * 1000).toFixed(0)} ms over (target ≤ ${(OUTSIDE_MARGIN_S * 1000).toFixed(0)} ms over)`,
  );
}
if (failure) console.log(`\nFAILED: ${failure}`);
