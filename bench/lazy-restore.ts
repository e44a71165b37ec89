/**
 * Lazy restore (the guest's RAM mapped copy-on-write from the snapshot's memory file, one snapshot
 * per config) against today's path (mapped-ram + multifd, a compressed state, one snapshot per
 * instance name), both builds in ONE run, on the demo guest (TCG, 1 vCPU):
 *   1. resume → healthy of 256 MB, 1 GB and 4 GB guests whose RAM was filled with non-zero data
 *      before the capture (75% of the RAM, 50% where 75% would leave the guest agent under 64 MB):
 *      `start --cold --no-capture`, fill through the guest agent (tmpfs, an 8 MB random block
 *      repeated: zstd's 4 MB frames cannot shrink it), `warmvm capture`, then N resumes (`start`,
 *      `stop`), the builds alternated; the resume's own seconds (the `resume.*` states), `total`,
 *      and launch → paused (resume.launching + resume.incoming);
 *   2. the capture of each filled guest (the `capture` command's own seconds, its wall time, and for the new build the
 *      time until its seal recorded the memory checksum in the background); 4 GB is the one that counts;
 *   3. new build only: clones of one snapshot (4 instance names, one config) started at once,
 *      against one clone started alone just before: wall time, each QEMU's Rss/Pss/Private_Dirty
 *      (smaps_rollup, read as its start returns healthy), the memory file's sha256 before and after
 *      every clone overwrote 10% of its RAM;
 *   4. a cold boot to healthy at 256 MB, file-backed RAM (new) against anonymous RAM (old), alternated.
 * Each build has its own home, wiped first and removed at the end (unless --keep):
 * $WARMVM_HOME/bench/lazy (this tree's dist/) and $WARMVM_HOME/bench/lazy-old (--old-cli).
 * Every instance it started is stopped, also on failure or Ctrl-C. Takes long: a 4 GB fill under
 * TCG is slow. Resumes and clones run with `--no-capture`, so a fallback never replaces the filled
 * snapshot; a resume that fails or falls back is retried (and reported). A cold boot whose rotation
 * raced the guest's own health-server start is booted again (and reported: see workloadProblem).
 * `--no-ports` uses configs with no forwarded port and no HTTP check (healthy = agent and
 * rotation), for both builds.
 *   node dist/bench/lazy-restore.js [--runs N] [--sizes 256,1024,4096] [--clone-size MB] [--clones 4]
 *     [--old-cli /tmp/base13/dist/bin/warmvm.js] [--no-ports] [--out FILE] [--keep]
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { instancePaths, resolveHome } from '../adapters/instance/paths.js';
import { helpIfAsked, option } from './argv.js';
import { cleanUpOnce, endQemusUnder } from './bench-cleanup.js';
import { BLOB, FILL_TIMEOUT_MS, type Fill, fillGuest } from './guest-fill.js';
import { type GuestShell, guestShell } from './guest-shell.js';
import { progress } from './progress.js';
import { secondsUntilSealed } from './sealed.js';
import { formatSummary, parseRuns, summarize } from './stats.js';
import { CLI, type CliRun, warmvmJson } from './warmvm-run.js';

helpIfAsked(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Arguments

const flag = (name: string): boolean => process.argv.includes(name);
function wholeNumber(name: string, fallback: number): number {
  const value = Number(option(name) ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} takes a whole number ≥ 1`);
  return value;
}

const runs = parseRuns(process.argv, 3);
const sizes = (option('--sizes') ?? '256,1024,4096').split(',').map(Number);
if (sizes.some((size) => !Number.isInteger(size) || size < 128)) throw new Error('--sizes takes MB values ≥ 128, e.g. 256,1024,4096');
const cloneSize = wholeNumber('--clone-size', Math.max(...sizes));
const cloneCount = wholeNumber('--clones', 4);
const noPorts = flag('--no-ports');
const keep = flag('--keep');
const outFile = option('--out');
const oldCli = resolve(option('--old-cli') ?? '/tmp/base13/dist/bin/warmvm.js');

const CLONE_WRITE_PERCENT = 10;
/** Per size and build: a resume that fails or falls back is retried, this many times in all before the run gives up. */
const MAX_FAILED_RESUMES = 3;

// ---------------------------------------------------------------------------------------------
// The two builds, each in its own home

interface Build {
  label: 'new' | 'old';
  cli: string;
  home: string;
}

const base = resolveHome();
const builds: Build[] = [
  { label: 'new', cli: CLI, home: join(base, 'bench', 'lazy') },
  { label: 'old', cli: oldCli, home: join(base, 'bench', 'lazy-old') },
];
const newBuild = builds[0]!;
const oldBuild = builds[1]!;

const warmvm = (build: Build, args: string[]): Promise<CliRun> => warmvmJson(build.cli, build.home, args);

/** Instances that may be running, by build and name: stopped in the end whatever happened. */
const running = new Map<string, { build: Build; name: string }>();

interface Started {
  name: string;
  wall: number;
  seconds: Record<string, number>;
  path: string;
  pid: number;
  fallbackReason: string | undefined;
}

async function start(build: Build, name: string, config: string, extra: string[] = []): Promise<Started> {
  running.set(`${build.label}:${name}`, { build, name });
  const run = await warmvm(build, ['start', '--name', name, '--config', config, ...extra]);
  const json = run.json;
  if (json.outcome !== 'healthy') {
    throw new Error(
      `${build.label}: warmvm start --name ${name} ${extra.join(' ')} failed: ${JSON.stringify(json.error ?? json)} ${run.stderr}\n${await whatHappened(build, name)}`,
    );
  }
  return {
    name,
    wall: run.wall,
    seconds: (json.seconds ?? {}) as Record<string, number>,
    path: String(json.path),
    pid: Number(json.pid),
    fallbackReason: typeof json.fallbackReason === 'string' ? json.fallbackReason : undefined,
  };
}

/** The last states of an instance's trace and the last lines of its guest console: why a start failed or fell back. */
async function whatHappened(build: Build, name: string): Promise<string> {
  const paths = instancePaths(build.home, name);
  const lines = (await readFile(paths.traceFile, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
  const states = lines
    .map((line) => JSON.parse(line) as { state?: string; from?: string; ms?: number; event?: { type?: string } })
    .filter((entry) => entry.state !== undefined)
    .slice(-12)
    .map((entry) => `${entry.from ?? '∅'} (${entry.ms ?? '?'} ms) → ${entry.state}`);
  const serial = (await readFile(paths.serialLog, 'utf8').catch(() => '')).trim().split('\n').slice(-6);
  return `    trace: ${states.join('; ')}\n    last trace line: ${(lines.at(-1) ?? '').slice(0, 600)}\n    serial: ${serial.join(' | ')}`;
}

async function stop(build: Build, name: string): Promise<void> {
  const run = await warmvm(build, ['stop', '--name', name]);
  running.delete(`${build.label}:${name}`);
  if (run.json.outcome !== 'stopped') throw new Error(`${build.label}: warmvm stop --name ${name}: ${JSON.stringify(run.json)}`);
}

// ---------------------------------------------------------------------------------------------
// The guest, through its agent

/** A shell in one build's instance; its errors name both. */
const inGuest = (build: Build, name: string): GuestShell => guestShell(instancePaths(build.home, name).qgaSocket, `${build.label}/${name}`);

// ---------------------------------------------------------------------------------------------
// Host-side measures

type Smaps = Record<'Rss' | 'Pss' | 'Pss_Anon' | 'Pss_File' | 'Shared_Clean' | 'Private_Clean' | 'Private_Dirty', number>;

/** The QEMU's memory, in MB, from /proc/PID/smaps_rollup. */
async function smaps(pid: number): Promise<Smaps> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  const mb = (key: string): number => Math.round(kb(key) / 102.4) / 10;
  return {
    Rss: mb('Rss'),
    Pss: mb('Pss'),
    Pss_Anon: mb('Pss_Anon'),
    Pss_File: mb('Pss_File'),
    Shared_Clean: mb('Shared_Clean'),
    Private_Clean: mb('Private_Clean'),
    Private_Dirty: mb('Private_Dirty'),
  };
}

const showSmaps = (m: Smaps): string =>
  `Rss ${m.Rss} MB, Pss ${m.Pss} MB, Private_Dirty ${m.Private_Dirty} MB (Pss_Anon ${m.Pss_Anon}, Pss_File ${m.Pss_File}, Shared_Clean ${m.Shared_Clean})`;

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Each file of a snapshot folder: apparent and allocated MB. */
async function snapshotFiles(dir: string): Promise<Record<string, { apparentMb: number; allocatedMb: number }>> {
  const files: Record<string, { apparentMb: number; allocatedMb: number }> = {};
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const info = await stat(join(dir, entry.name));
    files[entry.name] = { apparentMb: Math.round(info.size / 104_857.6) / 10, allocatedMb: Math.round((info.blocks * 512) / 104_857.6) / 10 };
  }
  return files;
}

const sumResume = (seconds: Record<string, number>): number =>
  Object.entries(seconds)
    .filter(([key]) => /^resume\.[^.]+$/.test(key))
    .reduce((sum, [, value]) => sum + value, 0);
const launchToPaused = (seconds: Record<string, number>): number => (seconds['resume.launching'] ?? 0) + (seconds['resume.incoming'] ?? 0);

// ---------------------------------------------------------------------------------------------
// Homes, configs, clean-up

async function configFor(build: Build, memoryMb: number): Promise<string> {
  const file = join(build.home, `demo-${memoryMb}.json`);
  await writeFile(file, JSON.stringify(noPorts ? { memoryMb, ports: [], health: [] } : { memoryMb }) + '\n');
  return file;
}

/** Stops every instance this run may have left running, then any QEMU still under its homes (by pid). */
async function stopEverything(): Promise<void> {
  for (const { build, name } of [...running.values()]) {
    await stop(build, name).catch((error: unknown) => progress(`clean-up: ${build.label}/${name}: ${(error as Error).message.slice(0, 200)}`));
  }
  running.clear();
  await endQemusUnder(
    builds.map((build) => build.home),
    (qemu) => progress(`clean-up: QEMU pid ${qemu.pid} still runs under a bench home, terminating it: ${qemu.cmdline}`),
  );
}

/** A home left by an earlier run: its instances stopped, the folder removed. */
async function freshHome(build: Build): Promise<void> {
  const instances = await readdir(join(build.home, 'instances')).catch(() => [] as string[]);
  for (const name of instances) await warmvm(build, ['stop', '--name', name]);
  await rm(build.home, { recursive: true, force: true });
  await mkdir(build.home, { recursive: true });
}

const cleanUp = cleanUpOnce(async () => {
  await stopEverything();
  if (!keep) for (const build of builds) await rm(build.home, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// The measures

interface Resume {
  resume: number;
  total: number;
  launchPaused: number;
  wall: number;
  seconds: Record<string, number>;
}

interface SizeResult {
  memoryMb: number;
  builds: Record<
    'new' | 'old',
    {
      fill: Fill;
      capture: {
        seconds: Record<string, number>;
        wall: number;
        snapshot: string;
        files: Record<string, { apparentMb: number; allocatedMb: number }>;
        /** Seconds from the command's return until its seal recorded the memory checksum (new build; the old one checksummed within the capture). */
        sealedAfter: number | undefined;
      };
      resumes: Resume[];
      /** Resumes that failed or fell back to a cold boot (retried, up to MAX_FAILED_RESUMES), with why. */
      failedResumes: string[];
    }
  >;
}

const instanceFor = (memoryMb: number): string => `lazy-${memoryMb}`;

/** A cold boot without capture, the fill, `warmvm capture`: the snapshot every resume of this size maps. */
/**
 * The demo guest's /init runs `health-server start` right after its agent comes up, and a cold
 * boot rotates (which restarts the health server) as soon as the agent answers: the two can race.
 * A lost race either fails the rotation ("httpd did not listen") or leaves an httpd listening that
 * the pid file does not name, and every later rotation of that snapshot then fails ("port 8080 is
 * held by another process"). So after a cold boot the bench checks that exactly one httpd runs and
 * that the pid file names it, and boots again otherwise (each case recorded).
 */
async function workloadProblem(build: Build, name: string): Promise<string | undefined> {
  const out = await inGuest(build, name)(
    'echo "pidfile=$(cat /run/warmvm/health-server/httpd.pid 2>/dev/null)"; for d in /proc/[0-9]*; do case $(tr "\\0" " " <$d/cmdline 2>/dev/null) in "busybox httpd -f"*) echo "httpd=$d" ;; esac; done',
    120_000,
  );
  const pidFile = /pidfile=(\d*)/.exec(out)?.[1] ?? '';
  const httpds = [...out.matchAll(/httpd=\/proc\/(\d+)/g)].map((match) => match[1]);
  if (httpds.length === 1 && httpds[0] === pidFile) return undefined;
  return `after the cold boot's rotation the guest runs httpd ${httpds.join(', ') || 'none'} while its pid file names ${pidFile || 'nothing'}`;
}

/** Races the bench recovered from (see workloadProblem), and cold boots that failed outright. */
const raceLog: string[] = [];
const MAX_COLD_ATTEMPTS = 4;

/** `start --cold --no-capture`, booted again when its rotation raced the guest's own workload start. */
async function coldBoot(build: Build, name: string, config: string, memoryMb: number): Promise<Started> {
  for (let attempt = 1; ; attempt += 1) {
    let problem: string | undefined;
    try {
      const started = await start(build, name, config, ['--cold', '--no-capture']);
      problem = await workloadProblem(build, name);
      if (!problem) return started;
    } catch (error) {
      problem = (error as Error).message.split('\n')[0];
    }
    const entry = `${build.label} ${memoryMb} MB cold boot ${attempt}: ${problem}`;
    raceLog.push(entry);
    progress(`${entry}; booting again`);
    await stop(build, name).catch(() => undefined);
    if (attempt >= MAX_COLD_ATTEMPTS) throw new Error(entry);
  }
}

async function captureFilled(build: Build, memoryMb: number): Promise<SizeResult['builds']['new']> {
  const name = instanceFor(memoryMb);
  const config = await configFor(build, memoryMb);
  const cold = await coldBoot(build, name, config, memoryMb);
  progress(`${build.label} ${memoryMb} MB: cold boot ${cold.seconds.total?.toFixed(2)} s (path ${cold.path}), filling…`);
  const fill = await fillGuest(inGuest(build, name), memoryMb);
  progress(
    `${build.label} ${memoryMb} MB: filled ${fill.mb} MB (${fill.percent}%) in ${fill.seconds.toFixed(1)} s; guest MemAvailable ${Math.round(fill.availableBeforeMb)} → ${Math.round(fill.availableAfterMb)} MB`,
  );
  const run = await warmvm(build, ['capture', '--name', name, '--config', config]);
  running.delete(`${build.label}:${name}`);
  if (run.json.outcome !== 'captured') throw new Error(`${build.label}: warmvm capture --name ${name} failed: ${JSON.stringify(run.json)} ${run.stderr}`);
  const seconds = (run.json.seconds ?? {}) as Record<string, number>;
  const snapshot = String(run.json.snapshot);
  progress(`${build.label} ${memoryMb} MB: captured in ${seconds.total?.toFixed(3)} s (${JSON.stringify(seconds)})`);
  // The resumes wait for the seal: it reads the whole memory file, and would take their CPU.
  const sealedAfter = build.label === 'new' ? await secondsUntilSealed(snapshot) : undefined;
  if (sealedAfter !== undefined) progress(`${build.label} ${memoryMb} MB: memory checksum recorded ${sealedAfter.toFixed(3)} s after the capture returned`);
  return { fill, capture: { seconds, wall: run.wall, snapshot, files: await snapshotFiles(snapshot), sealedAfter }, resumes: [], failedResumes: [] };
}

/** One resume and its stop; `--no-capture` so that a fallback's cold boot never replaces the filled snapshot. */
async function resumeOnce(build: Build, memoryMb: number): Promise<Resume> {
  const name = instanceFor(memoryMb);
  const started = await start(build, name, join(build.home, `demo-${memoryMb}.json`), ['--no-capture']);
  const why = started.path === 'resume' ? '' : await whatHappened(build, name);
  await stop(build, name);
  if (started.path !== 'resume') throw new Error(`${build.label} ${memoryMb} MB: expected a resume, got ${started.path}: ${started.fallbackReason ?? ''}\n${why}`);
  return {
    resume: sumResume(started.seconds),
    total: started.seconds.total ?? started.wall,
    launchPaused: launchToPaused(started.seconds),
    wall: started.wall,
    seconds: started.seconds,
  };
}

async function measureSize(memoryMb: number): Promise<SizeResult> {
  const result = { memoryMb, builds: {} } as SizeResult;
  for (const build of builds) result.builds[build.label] = await captureFilled(build, memoryMb);
  for (let i = 0; i < runs; i += 1) {
    // Alternated, and the order swapped every run, so a shared machine's drift hits both alike.
    for (const build of i % 2 === 0 ? builds : [...builds].reverse()) {
      const failed = result.builds[build.label].failedResumes;
      let resume: Resume | undefined;
      while (!resume) {
        try {
          resume = await resumeOnce(build, memoryMb);
        } catch (error) {
          const message = (error as Error).message;
          failed.push(message);
          progress(`${build.label} ${memoryMb} MB resume ${i + 1}/${runs} FAILED (${failed.length} of at most ${MAX_FAILED_RESUMES}): ${message}`);
          await stop(build, instanceFor(memoryMb)).catch(() => undefined);
          if (failed.length >= MAX_FAILED_RESUMES) throw error;
        }
      }
      result.builds[build.label].resumes.push(resume);
      progress(
        `${build.label} ${memoryMb} MB resume ${i + 1}/${runs}: resume.* ${resume.resume.toFixed(3)} s, total ${resume.total.toFixed(3)} s, launch→paused ${resume.launchPaused.toFixed(3)} s`,
      );
    }
  }
  return result;
}

interface CloneStart {
  name: string;
  wall: number;
  total: number;
  resume: number;
  path: string;
  smaps: Smaps;
}

interface CloneResult {
  memoryMb: number;
  fill: Fill | undefined;
  lone: CloneStart;
  together: { wall: number; clones: CloneStart[]; pssSumMb: number; allUp: Smaps[]; pssSumAllUpMb: number; afterWrites: Smaps[]; writeMbEach: number; writeSeconds: number[] };
  sha256: { before: string; after: string; unchanged: boolean };
}

async function cloneStart(memoryMb: number, name: string): Promise<CloneStart> {
  const started = await start(newBuild, name, join(newBuild.home, `demo-${memoryMb}.json`), ['--no-capture']);
  const memory = await smaps(started.pid);
  if (started.path !== 'resume') throw new Error(`clone ${name}: expected a resume, got ${started.path}: ${started.fallbackReason ?? ''}`);
  return { name, wall: started.wall, total: started.seconds.total ?? started.wall, resume: sumResume(started.seconds), path: started.path, smaps: memory };
}

async function measureClones(memoryMb: number, snapshotDir: string, fill: Fill | undefined): Promise<CloneResult> {
  const memoryFile = join(snapshotDir, 'mem.raw');
  const before = await sha256File(memoryFile);
  progress(`clones: ${memoryFile} sha256 ${before.slice(0, 16)}…`);
  const lone = await cloneStart(memoryMb, `lazy-${memoryMb}-lone`);
  await stop(newBuild, lone.name);
  progress(`clones: a lone clone healthy in ${lone.wall.toFixed(3)} s (start's total ${lone.total.toFixed(3)} s); ${showSmaps(lone.smaps)}`);

  const names = Array.from({ length: cloneCount }, (_, i) => `lazy-${memoryMb}-clone-${i + 1}`);
  const began = performance.now();
  const settled = await Promise.allSettled(names.map((name) => cloneStart(memoryMb, name)));
  const wall = (performance.now() - began) / 1000;
  const failed = settled.filter((entry): entry is PromiseRejectedResult => entry.status === 'rejected');
  if (failed.length > 0) throw new Error(`clones: ${failed.length} of ${cloneCount} failed: ${failed.map((entry) => (entry.reason as Error).message).join('; ')}`);
  const clones = settled.map((entry) => (entry as PromiseFulfilledResult<CloneStart>).value);
  const pids = await Promise.all(names.map(async (name) => Number(JSON.parse(await readFile(instancePaths(newBuild.home, name).stateFile, 'utf8')).pid)));
  const allUp = await Promise.all(pids.map((pid) => smaps(pid)));
  progress(`clones: ${cloneCount} healthy together in ${wall.toFixed(3)} s`);

  const writeMbEach = Math.max(1, Math.floor((memoryMb * CLONE_WRITE_PERCENT) / 100));
  const writeSeconds = await Promise.all(
    names.map(async (name) => {
      const t0 = performance.now();
      await inGuest(newBuild, name)(`dd if=/dev/zero of=${BLOB} bs=1M count=${writeMbEach} conv=notrunc 2>/dev/null && sync`, FILL_TIMEOUT_MS);
      return (performance.now() - t0) / 1000;
    }),
  );
  const afterWrites = await Promise.all(pids.map((pid) => smaps(pid)));
  progress(`clones: each overwrote ${writeMbEach} MB of its RAM (${writeSeconds.map((s) => s.toFixed(1)).join(', ')} s); hashing ${memoryFile} again`);
  const after = await sha256File(memoryFile);
  for (const name of names) await stop(newBuild, name);
  const pssSum = (list: Smaps[]): number => Math.round(list.reduce((sum, m) => sum + m.Pss, 0) * 10) / 10;
  return {
    memoryMb,
    fill,
    lone,
    together: { wall, clones, pssSumMb: pssSum(clones.map((c) => c.smaps)), allUp, pssSumAllUpMb: pssSum(allUp), afterWrites, writeMbEach, writeSeconds },
    sha256: { before, after, unchanged: before === after },
  };
}

type ColdBoots = Record<'new' | 'old', { total: number; wall: number; seconds: Record<string, number> }[]>;

async function measureColdBoots(memoryMb: number): Promise<ColdBoots> {
  const result: ColdBoots = { new: [], old: [] };
  for (let i = 0; i < runs; i += 1) {
    for (const build of i % 2 === 0 ? builds : [...builds].reverse()) {
      const config = await configFor(build, memoryMb);
      const started = await coldBoot(build, `cold-${memoryMb}`, config, memoryMb);
      await stop(build, `cold-${memoryMb}`);
      result[build.label].push({ total: started.seconds.total ?? started.wall, wall: started.wall, seconds: started.seconds });
      progress(`${build.label} cold boot ${memoryMb} MB ${i + 1}/${runs}: ${started.seconds.total?.toFixed(3)} s`);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The run

const med = (values: number[]): number => summarize(values).median;
const x = (value: number): string => `${value.toFixed(2)}×`;
const s = (value: number): string => `${value.toFixed(3)} s`;
const sizeName = (mb: number): string => (mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GB` : `${mb} MB`);

const meta = {
  date: new Date().toISOString(),
  runs,
  sizes,
  cloneSize,
  cloneCount,
  configs: noPorts ? '{"memoryMb": M, "ports": [], "health": []}' : '{"memoryMb": M}',
  builds: Object.fromEntries(builds.map((build) => [build.label, { cli: build.cli, home: build.home }])),
  host: { cpus: cpus().length, memoryGb: Math.round(totalmem() / 2 ** 30), loadavgAtStart: loadavg().map((v) => Math.round(v * 100) / 100) },
};
const results: { meta: typeof meta & { loadavgAtEnd?: number[] }; coldBootProblems: string[]; sizes: SizeResult[]; clones?: CloneResult; coldBoot?: ColdBoots } = {
  meta,
  coldBootProblems: raceLog,
  sizes: [],
};

try {
  for (const build of builds) await freshHome(build);
  progress(`homes: new ${newBuild.home}, old ${oldBuild.home}; configs ${meta.configs}; load average ${meta.host.loadavgAtStart.join(' ')}`);
  let cloneSnapshot: { dir: string; fill: Fill | undefined } | undefined;
  for (const memoryMb of sizes) {
    const sized = await measureSize(memoryMb);
    results.sizes.push(sized);
    if (memoryMb === cloneSize) cloneSnapshot = { dir: sized.builds.new.capture.snapshot, fill: sized.builds.new.fill };
  }
  if (!cloneSnapshot) {
    const captured = await captureFilled(newBuild, cloneSize);
    cloneSnapshot = { dir: captured.capture.snapshot, fill: captured.fill };
  }
  results.clones = await measureClones(cloneSize, cloneSnapshot.dir, cloneSnapshot.fill);
  results.coldBoot = await measureColdBoots(256);
} finally {
  results.meta.loadavgAtEnd = loadavg().map((v) => Math.round(v * 100) / 100);
  if (outFile) await writeFile(outFile, JSON.stringify(results, null, 2) + '\n');
  await cleanUp();
}

// ---------------------------------------------------------------------------------------------
// The figures

const section = (title: string): void => console.log(`\n${title}`);
console.log(
  `lazy restore (new: ${newBuild.cli}) against today's path (old: ${oldBuild.cli}), demo guest, TCG 1 vCPU, ${runs} resume(s) per size and build; ` +
    `${meta.host.cpus} cores, ${meta.host.memoryGb} GB, shared with other work (load average ${meta.host.loadavgAtStart.join(' ')} at start, ${results.meta.loadavgAtEnd?.join(' ')} at end): figures are noisy`,
);
console.log(`configs ${meta.configs}; the page cache holds each snapshot (resumes follow their capture)`);

section('1. resume → healthy of a filled guest (start --json seconds)');
for (const sized of results.sizes) {
  const fills = builds.map((build) => sized.builds[build.label].fill);
  console.log(
    `${sizeName(sized.memoryMb)} guest, ${fills.map((fill, i) => `${builds[i]!.label} filled ${fill.mb} MB (${fill.percent}%) in ${fill.seconds.toFixed(1)} s`).join(', ')}`,
  );
  for (const note of new Set(fills.map((fill) => fill.note).filter((note) => note !== undefined))) console.log(`  note: ${note}`);
  for (const build of builds) {
    const resumes = sized.builds[build.label].resumes;
    console.log('  ' + formatSummary(`${build.label} resume.* (launch→healthy)`, summarize(resumes.map((r) => r.resume))));
    console.log('  ' + formatSummary(`${build.label} total`, summarize(resumes.map((r) => r.total))));
    console.log('  ' + formatSummary(`${build.label} launch→paused`, summarize(resumes.map((r) => r.launchPaused))));
  }
  for (const build of builds) {
    for (const failure of sized.builds[build.label].failedResumes) console.log(`  ${build.label}: a resume failed and was retried: ${failure.split('\n')[0]?.slice(0, 400)}`);
  }
  const ratio = med(sized.builds.old.resumes.map((r) => r.resume)) / med(sized.builds.new.resumes.map((r) => r.resume));
  console.log(`  old / new resume.* medians: ${x(ratio)}`);
}
const smallest = results.sizes[0];
const largest = results.sizes.at(-1);
const growth: Record<string, { resume: number; total: number; launchPaused: number }> = {};
if (smallest && largest && largest !== smallest) {
  for (const build of builds) {
    const of = (sized: SizeResult, pick: (r: Resume) => number): number => med(sized.builds[build.label].resumes.map(pick));
    growth[build.label] = {
      resume: of(largest, (r) => r.resume) / of(smallest, (r) => r.resume),
      total: of(largest, (r) => r.total) / of(smallest, (r) => r.total),
      launchPaused: of(largest, (r) => r.launchPaused) / of(smallest, (r) => r.launchPaused),
    };
    const g = growth[build.label]!;
    console.log(
      `${build.label}: ${sizeName(largest.memoryMb)} / ${sizeName(smallest.memoryMb)} medians: resume.* ${x(g.resume)}, total ${x(g.total)}, launch→paused ${x(g.launchPaused)}` +
        (build.label === 'new' ? `   (target ≤ 1.2×: ${g.resume <= 1.2 ? 'met' : 'NOT met'})` : ''),
    );
  }
}

section('2. capture of a filled guest (warmvm capture --json seconds)');
for (const sized of results.sizes) {
  for (const build of builds) {
    const capture = sized.builds[build.label].capture;
    const states = Object.entries(capture.seconds)
      .filter(([key]) => key !== 'total')
      .map(([key, value]) => `${key.replace('capture.', '')} ${value.toFixed(3)}`)
      .join(', ');
    const files = Object.entries(capture.files)
      .filter(([file]) => /\.(raw|zst)$/.test(file))
      .map(([file, size]) => `${file} ${size.apparentMb}/${size.allocatedMb} MB`)
      .join(', ');
    const sealed = capture.sealedAfter === undefined ? '' : `; memory checksum recorded ${s(capture.sealedAfter)} after it returned (its seal)`;
    console.log(
      `  ${sizeName(sized.memoryMb).padEnd(6)} ${build.label}: total ${s(capture.seconds.total ?? NaN)} (${states}), command ${s(capture.wall)}${sealed}; files apparent/allocated: ${files}`,
    );
  }
  const ratio = (sized.builds.old.capture.seconds.total ?? NaN) / (sized.builds.new.capture.seconds.total ?? NaN);
  console.log(`  ${sizeName(sized.memoryMb).padEnd(6)} old / new: ${x(ratio)}` + (sized.memoryMb === 4096 ? `   (target ≥ 20×: ${ratio >= 20 ? 'met' : 'NOT met'})` : ''));
}

const clones = results.clones;
if (clones) {
  section(`3. ${cloneCount} clones of one ${sizeName(clones.memoryMb)} snapshot at once (new build)`);
  console.log(`  lone clone: healthy in ${s(clones.lone.wall)} (CLI wall; start's total ${s(clones.lone.total)}); ${showSmaps(clones.lone.smaps)}`);
  for (const clone of clones.together.clones) {
    console.log(`  ${clone.name}: healthy in ${s(clone.wall)} (total ${s(clone.total)}, path ${clone.path}); ${showSmaps(clone.smaps)}`);
  }
  const wallRatio = clones.together.wall / clones.lone.wall;
  const pssRatio = clones.together.pssSumMb / clones.lone.smaps.Rss;
  const pssAllUpRatio = clones.together.pssSumAllUpMb / clones.lone.smaps.Rss;
  console.log(
    `  wall of the ${cloneCount} together ${s(clones.together.wall)} / lone ${s(clones.lone.wall)} = ${x(wallRatio)}   (target ≤ 2×: ${wallRatio <= 2 ? 'met' : 'NOT met'})`,
  );
  console.log(
    `  sum of PSS, each read as its start returned: ${clones.together.pssSumMb} MB / lone RSS ${clones.lone.smaps.Rss} MB = ${x(pssRatio)}   (target ≤ 1.5×: ${pssRatio <= 1.5 ? 'met' : 'NOT met'})`,
  );
  const slowestTotal = Math.max(...clones.together.clones.map((clone) => clone.total));
  console.log(`  by start's own total: slowest of the ${cloneCount} ${s(slowestTotal)} / lone ${s(clones.lone.total)} = ${x(slowestTotal / clones.lone.total)}`);
  console.log(`  sum of PSS, read once all ${cloneCount} were up: ${clones.together.pssSumAllUpMb} MB (${x(pssAllUpRatio)} the lone RSS)`);
  console.log(`  after each overwrote ${clones.together.writeMbEach} MB: ${clones.together.afterWrites.map((m) => `Pss ${m.Pss}/Private_Dirty ${m.Private_Dirty}`).join(', ')} MB`);
  console.log(`  mem.raw sha256 before ${clones.sha256.before}`);
  console.log(`  mem.raw sha256 after  ${clones.sha256.after}   ${clones.sha256.unchanged ? 'unchanged' : 'CHANGED'}`);
}

const cold = results.coldBoot;
if (cold) {
  section('4. cold boot → healthy, 256 MB (start --cold --no-capture, seconds.total)');
  console.log('  ' + formatSummary('new (file-backed RAM)', summarize(cold.new.map((r) => r.total))));
  console.log('  ' + formatSummary('old (anonymous RAM)', summarize(cold.old.map((r) => r.total))));
  console.log('  ' + formatSummary('new / old (per pair)', summarize(cold.new.map((r, i) => r.total / (cold.old[i]?.total ?? NaN))), '×'));
  for (const build of builds) {
    const states = [...new Set(cold[build.label].flatMap((r) => Object.keys(r.seconds)))].filter((key) => key !== 'total' && key !== 'coldBoot');
    console.log(`  ${build.label} states (median s): ${states.map((key) => `${key} ${med(cold[build.label].map((r) => r.seconds[key] ?? 0)).toFixed(3)}`).join(', ')}`);
  }
}

if (raceLog.length > 0) {
  section("cold boots booted again (the rotation raced the guest's own health-server start, or failed)");
  for (const entry of raceLog) console.log(`  ${entry.slice(0, 400)}`);
}

section('summary (medians)');
const row = (label: string, newValue: string, oldValue: string, note = ''): void => console.log(`  ${label.padEnd(36)} ${newValue.padStart(10)} ${oldValue.padStart(10)}  ${note}`);
row('', 'new', 'old');
for (const sized of results.sizes) {
  const m = (build: 'new' | 'old', pick: (r: Resume) => number): number => med(sized.builds[build].resumes.map(pick));
  row(`resume.* ${sizeName(sized.memoryMb)}`, s(m('new', (r) => r.resume)), s(m('old', (r) => r.resume)), `old/new ${x(m('old', (r) => r.resume) / m('new', (r) => r.resume))}`);
  row(`  launch→paused ${sizeName(sized.memoryMb)}`, s(m('new', (r) => r.launchPaused)), s(m('old', (r) => r.launchPaused)));
  row(`  total ${sizeName(sized.memoryMb)}`, s(m('new', (r) => r.total)), s(m('old', (r) => r.total)));
}
if (growth.new && growth.old && smallest && largest) {
  row(`resume.* ${sizeName(largest.memoryMb)} / ${sizeName(smallest.memoryMb)}`, x(growth.new.resume), x(growth.old.resume), 'target new ≤ 1.2×');
}
for (const sized of results.sizes) {
  const n = sized.builds.new.capture.seconds.total ?? NaN;
  const o = sized.builds.old.capture.seconds.total ?? NaN;
  row(`capture ${sizeName(sized.memoryMb)} (filled)`, s(n), s(o), `old/new ${x(o / n)}${sized.memoryMb === 4096 ? ' (target ≥ 20×)' : ''}`);
}
if (clones) {
  row(`${cloneCount} clones together / lone (wall)`, x(clones.together.wall / clones.lone.wall), '-', 'target ≤ 2×');
  row(
    `Σ PSS ${cloneCount} clones / lone RSS`,
    x(clones.together.pssSumMb / clones.lone.smaps.Rss),
    '-',
    `target ≤ 1.5× (all up: ${x(clones.together.pssSumAllUpMb / clones.lone.smaps.Rss)})`,
  );
  row('mem.raw sha256 after clone writes', clones.sha256.unchanged ? 'unchanged' : 'CHANGED', '-');
}
if (cold) row('cold boot 256 MB', s(med(cold.new.map((r) => r.total))), s(med(cold.old.map((r) => r.total))));
if (outFile) console.log(`\nfigures written to ${outFile}`);
