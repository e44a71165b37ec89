/**
 * Suspend and wake against a cold boot, on the demo guest (TCG, 1 vCPU), all in ONE run:
 *   1. `warmvm start --cold --no-capture` of a guest of --memory MB (default 1 GB) to healthy: the
 *      CLI's wall time and its own `seconds.total`;
 *   2. the fill: 75% of its RAM (50% where 75% would leave the guest agent under 64 MB) with
 *      non-zero data, a tmpfs holding an 8 MB random block repeated, written through the guest
 *      agent (bench/guest-fill.ts, shared with bench/lazy-restore.ts), so the suspend has real RAM to write;
 *   3. `warmvm stop --suspend`: wall time, the stop's own `ms`, and the `stateBytes` it wrote;
 *   4. `warmvm start` waking that state: wall time and `seconds.total`; a wake counts only if its
 *      path is `wake` and the fill file is still in the guest, its size unchanged;
 *   steps 3–4 repeated --runs times on the same filled instance (each wake can be suspended
 *   again), then `warmvm stop`. Ratios: cold / wake and (suspend + wake) / cold, medians.
 * Its own home, $WARMVM_HOME or /tmp/warmvm-bench-suspend (the images it holds are kept between
 * runs, the instance removed), and a config written there: `{"memoryMb": M}`. Every instance it
 * started is stopped, also on failure or Ctrl-C.
 *   node dist/bench/suspend.js [--runs 3] [--memory 1024] [--json] [--keep]
 */
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { instancePaths } from '../adapters/instance/paths.js';
import { helpIfAsked, option } from './argv.js';
import { cleanUpOnce, endQemusUnder } from './bench-cleanup.js';
import { blobBytes, type Fill, fillGuest, fillSurvived } from './guest-fill.js';
import { guestShell } from './guest-shell.js';
import { progress } from './progress.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { CLI, type CliRun, type Started, startedHealthy, warmvmJson } from './warmvm-run.js';

helpIfAsked(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Arguments

const runs = parseRuns(process.argv, 3);
const memoryMb = Number(option('--memory') ?? 1024);
if (!Number.isInteger(memoryMb) || memoryMb < 128) throw new Error('--memory takes a whole number of MB ≥ 128');
const asJson = process.argv.includes('--json');
const keep = process.argv.includes('--keep');

// Not resolveHome(): its fallback is the user's ~/.warmvm, which a bench must never touch.
const home = resolve(process.env.WARMVM_HOME?.trim() || '/tmp/warmvm-bench-suspend');
const NAME = 'bench-suspend';

/** A cold boot whose rotation raced the guest's own health-server start fails; booted again this many times in all. */
const MAX_COLD_ATTEMPTS = 3;

// ---------------------------------------------------------------------------------------------
// The CLI

/** For a stop (whose outcome is never `healthy`) and a wake (whose `keptSecrets` startedHealthy drops). */
const warmvm = (args: string[]): Promise<CliRun> => warmvmJson(CLI, home, args);

const command = (args: string[]): string => `WARMVM_HOME=${home} node ${CLI} ${args.join(' ')} --json`;

/** Set while the instance may be running (or is mid-suspend): the clean-up then stops it. */
let mayRun = false;

async function stop(): Promise<void> {
  const run = await warmvm(['stop', '--name', NAME]);
  mayRun = false;
  if (run.json.outcome !== 'stopped') throw new Error(`${command(['stop', '--name', NAME])}: ${JSON.stringify(run.json)} ${run.stderr}`);
}

// ---------------------------------------------------------------------------------------------
// The guest, through its agent

const shell = guestShell(instancePaths(home, NAME).qgaSocket);

/** The fill (bench/guest-fill.ts) and its blob's size, what every wake must find again. */
interface WakeFill extends Fill {
  blobBytes: number;
}

/** `blobBytes` placed after `mb`, where this bench's JSON has always had it. */
async function fillForWakes(): Promise<WakeFill> {
  const filled = await fillGuest(shell, memoryMb);
  const { percent, mb, ...rest } = filled;
  return { percent, mb, blobBytes: blobBytes(filled), ...rest };
}

// ---------------------------------------------------------------------------------------------
// Home, config, clean-up

async function writeConfig(): Promise<string> {
  await mkdir(home, { recursive: true });
  const file = join(home, `demo-${memoryMb}.json`);
  await writeFile(file, JSON.stringify({ memoryMb }) + '\n');
  return file;
}

/** The instance left by an earlier run: stopped and removed (its suspended state with it), the home's images kept. */
async function freshInstance(): Promise<void> {
  const dir = instancePaths(home, NAME).dir;
  await warmvm(['stop', '--name', NAME]);
  await rm(dir, { recursive: true, force: true });
}

/** Stops the instance if it may run, then ends (by pid) any QEMU still under the home: a suspend cut short can leave one. */
async function stopEverything(): Promise<void> {
  if (mayRun) await stop().catch((error: unknown) => progress(`clean-up: ${(error as Error).message.slice(0, 300)}`));
  await endQemusUnder([home], (qemu) => progress(`clean-up: QEMU pid ${qemu.pid} still runs under ${home}, terminating it`));
}

const cleanUp = cleanUpOnce(async () => {
  await stopEverything();
  // The suspended state is the guest's RAM again: a GB in the home per run, unless asked to keep it.
  if (!keep) await rm(instancePaths(home, NAME).dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// The measures

/**
 * A home with no images yet: the first start there builds the demo guest and probes QEMU (its
 * caches), seconds the timed cold boot must not carry. So one untimed cold boot comes first.
 */
async function warmUpIfFresh(config: string): Promise<boolean> {
  const images = await readdir(join(home, 'images')).catch(() => [] as string[]);
  if (images.length > 0) return false;
  progress(`${home} holds no images yet: an untimed cold boot first (the demo guest's build, QEMU's probes)`);
  await coldBoot(config, results.coldProblems);
  await stop();
  return true;
}

/** `start --cold --no-capture`, booted again when it fails (its rotation can race the guest's own health-server start). */
async function coldBoot(config: string, problems: string[]): Promise<Started> {
  const args = ['start', '--cold', '--no-capture', '--name', NAME, '--config', config];
  for (let attempt = 1; ; attempt += 1) {
    mayRun = true;
    try {
      return await startedHealthy(home, args);
    } catch (error) {
      const entry = `cold boot ${attempt}: ${(error as Error).message.split('\n')[0]?.slice(0, 400)}`;
      problems.push(entry);
      progress(`${entry}; booting again`);
      await stop().catch(() => undefined);
      if (attempt >= MAX_COLD_ATTEMPTS) throw new Error(`${command(args)} failed ${attempt} times: ${problems.join('; ')}`);
    }
  }
}

interface Suspend {
  wall: number;
  ms: number;
  stateBytes: number;
  /** The stream is sparse (zero pages are holes): what the disk really holds of it. */
  allocatedBytes: number;
  dir: string;
}

async function suspend(): Promise<Suspend> {
  const args = ['stop', '--name', NAME, '--suspend'];
  const run = await warmvm(args);
  const json = run.json;
  if (json.outcome !== 'suspended') throw new Error(`${command(args)}: ${JSON.stringify(json)} ${run.stderr}`);
  mayRun = false;
  const dir = String(json.dir);
  const allocatedBytes = await stat(join(dir, 'state.raw')).then(
    (info) => info.blocks * 512,
    () => NaN,
  );
  return { wall: run.wall, ms: Number(json.ms), stateBytes: Number(json.stateBytes), allocatedBytes, dir };
}

interface Wake {
  wall: number;
  total: number;
  path: string;
  keptSecrets: boolean;
  fill: { ok: boolean; listing: string };
}

/** A start that must wake the suspended state, and the fill the guest must still hold. */
async function wake(config: string, fill: WakeFill): Promise<Wake> {
  const args = ['start', '--name', NAME, '--config', config];
  mayRun = true;
  const run = await warmvm(args);
  const json = run.json;
  if (json.outcome !== 'healthy') throw new Error(`${command(args)}: ${JSON.stringify(json.error ?? json)} ${run.stderr}`);
  const seconds = (json.seconds ?? {}) as Record<string, number>;
  const path = String(json.path);
  const woken = { wall: run.wall, total: seconds.total ?? run.wall, path, keptSecrets: json.keptSecrets === true, fill: await fillSurvived(shell, fill.blobBytes) };
  if (path !== 'wake') throw new Error(`${command(args)}: expected path wake, got ${path}${json.fallbackReason ? ` (${String(json.fallbackReason)})` : ''}`);
  if (!woken.fill.ok) throw new Error(`${command(args)}: woke, but the fill is gone or changed: expected ${fill.blobBytes} bytes, guest says: ${woken.fill.listing}`);
  return woken;
}

// ---------------------------------------------------------------------------------------------
// The run

const med = (values: number[]): number => summarize(values).median;
const results: {
  meta: Record<string, unknown>;
  coldProblems: string[];
  /** Whether an untimed cold boot ran first (a fresh home: see warmUpIfFresh). */
  warmedUp?: boolean;
  cold?: { wall: number; total: number };
  fill?: WakeFill;
  cycles: { suspend: Suspend; wake: Wake }[];
  failure?: string;
} = {
  meta: {
    date: new Date().toISOString(),
    runs,
    memoryMb,
    home,
    cli: CLI,
    config: { memoryMb },
    host: { cpus: cpus().length, memoryGb: Math.round(totalmem() / 2 ** 30), loadavgAtStart: loadavg().map((v) => Math.round(v * 100) / 100) },
  },
  coldProblems: [],
  cycles: [],
};

try {
  const config = await writeConfig();
  await freshInstance();
  results.warmedUp = await warmUpIfFresh(config);
  const cold = await coldBoot(config, results.coldProblems);
  results.cold = { wall: cold.wall, total: cold.seconds.total ?? cold.wall };
  progress(`cold boot ${memoryMb} MB: ${cold.wall.toFixed(2)} s wall, total ${results.cold.total.toFixed(2)} s (path ${cold.path}); filling…`);
  const fill = await fillForWakes();
  results.fill = fill;
  progress(
    `filled ${fill.mb} MB (${fill.percent}%) in ${fill.seconds.toFixed(1)} s; guest MemAvailable ${Math.round(fill.availableBeforeMb)} → ${Math.round(fill.availableAfterMb)} MB`,
  );
  for (let i = 0; i < runs; i += 1) {
    const suspended = await suspend();
    progress(
      `run ${i + 1}/${runs}: suspended in ${suspended.wall.toFixed(2)} s wall (${suspended.ms} ms), ${(suspended.stateBytes / 1e6).toFixed(0)} MB (${(suspended.allocatedBytes / 1e6).toFixed(0)} MB allocated) to ${suspended.dir}`,
    );
    const woken = await wake(config, fill);
    progress(`run ${i + 1}/${runs}: woke in ${woken.wall.toFixed(2)} s wall, total ${woken.total.toFixed(2)} s, keptSecrets ${woken.keptSecrets}; ${woken.fill.listing}`);
    results.cycles.push({ suspend: suspended, wake: woken });
  }
  await stop();
} catch (error) {
  results.failure = (error as Error).message;
  process.exitCode = 1;
} finally {
  results.meta.loadavgAtEnd = loadavg().map((v) => Math.round(v * 100) / 100);
  await cleanUp();
}

// ---------------------------------------------------------------------------------------------
// The figures

if (asJson) {
  console.log(JSON.stringify(results, null, 2));
} else {
  printTable();
}

function printTable(): void {
  const host = results.meta.host as { cpus: number; memoryGb: number; loadavgAtStart: number[] };
  console.log(
    `suspend / wake against a cold boot, demo guest, TCG 1 vCPU, ${memoryMb} MB (config {"memoryMb": ${memoryMb}}), ${results.cycles.length} of ${runs} suspend+wake cycle(s); ` +
      `${host.cpus} cores, ${host.memoryGb} GB, load average ${host.loadavgAtStart.join(' ')} at start, ${(results.meta.loadavgAtEnd as number[]).join(' ')} at end`,
  );
  if (results.fill)
    console.log(
      `fill: ${results.fill.mb} MB (${results.fill.percent}%) of non-zero data in ${results.fill.seconds.toFixed(1)} s${results.fill.note ? `; ${results.fill.note}` : ''}`,
    );
  if (results.warmedUp) console.log('fresh home: one untimed cold boot ran first (demo guest build, QEMU probes)');
  for (const problem of results.coldProblems) console.log(`cold boot booted again: ${problem}`);
  const cold = results.cold;
  const cycles = results.cycles;
  if (cold) {
    console.log(formatSummary('cold boot, wall', summarize([cold.wall])));
    console.log(formatSummary('cold boot, seconds.total', summarize([cold.total])));
  }
  if (cycles.length > 0) {
    console.log(formatSummary('suspend, wall', summarize(cycles.map((c) => c.suspend.wall))));
    console.log(formatSummary("suspend, stop's own ms / 1000", summarize(cycles.map((c) => c.suspend.ms / 1000))));
    console.log(formatSummary('suspend, MB written (stateBytes)', summarize(cycles.map((c) => c.suspend.stateBytes / 1e6)), 'MB'));
    console.log(formatSummary('suspend, MB allocated (state.raw)', summarize(cycles.map((c) => c.suspend.allocatedBytes / 1e6)), 'MB'));
    console.log(formatSummary('wake, wall', summarize(cycles.map((c) => c.wake.wall))));
    console.log(formatSummary('wake, seconds.total', summarize(cycles.map((c) => c.wake.total))));
    console.log(`wake paths: ${cycles.map((c) => c.wake.path).join(', ')}; keptSecrets: ${cycles.map((c) => c.wake.keptSecrets).join(', ')}; fill file after each wake: ok`);
  }
  if (cold && cycles.length > 0) {
    const suspendWall = med(cycles.map((c) => c.suspend.wall));
    const wakeWall = med(cycles.map((c) => c.wake.wall));
    const wakeTotal = med(cycles.map((c) => c.wake.total));
    const suspendOwn = med(cycles.map((c) => c.suspend.ms / 1000));
    const row = (label: string, wall: string, own: string): void => console.log(`  ${label.padEnd(32)}${wall.padStart(9)}  ${own.padStart(9)}`);
    console.log('\nsummary (medians)');
    row('', 'wall', "CLI's own");
    row('cold boot s', cold.wall.toFixed(3), cold.total.toFixed(3));
    row(`suspend s (${(med(cycles.map((c) => c.suspend.stateBytes)) / 1e6).toFixed(0)} MB written)`, suspendWall.toFixed(3), suspendOwn.toFixed(3));
    row('wake s', wakeWall.toFixed(3), wakeTotal.toFixed(3));
    row('cold / wake', `${(cold.wall / wakeWall).toFixed(2)}×`, `${(cold.total / wakeTotal).toFixed(2)}×`);
    row('(suspend + wake) / cold', `${((suspendWall + wakeWall) / cold.wall).toFixed(2)}×`, `${((suspendOwn + wakeTotal) / cold.total).toFixed(2)}×`);
  }
  if (results.failure) console.log(`\nFAILED: ${results.failure}`);
}
