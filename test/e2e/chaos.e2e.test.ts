import { lstat, readdir, readFile, rm, rmdir, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { readPidFile } from '../../adapters/qemu/process.js';
import { parseManifest } from '../../adapters/snapshot/manifest.js';
import { SNAPSHOT_FILE_MODE } from '../../adapters/snapshot/store.js';
import { isProcessAlive, processCommandLine } from '../../adapters/support/process-alive.js';
import { CLI, cli, E2E_HOME } from '../helpers/cli.js';
import { liveInstanceQemus } from '../helpers/instance-leftovers.js';
import { caseConfig } from '../helpers/store-check.js';

// Chaos on real processes: random sequences of start, stop, stop --suspend, capture and reset on
// three instances of one config, some racing each other, some cut by Ctrl-C or kill -9 part way.
// After every step: at most one QEMU per instance, no QEMU that no instance names, no partial or
// changed snapshot, no temp file of a finished command, every command ended with exit 0 or a
// clear error (130 for Ctrl-C), none past its bound. WARMVM_CHAOS_RUNS=N sequences (default 2);
// WARMVM_CHAOS_SEED=S replays the sequences of seed S (each run prints its seed).
const NAMES = ['chaos-a', 'chaos-b', 'chaos-c'] as const;
const RUNS = Number(process.env.WARMVM_CHAOS_RUNS ?? 2);
const SEED = process.env.WARMVM_CHAOS_SEED === undefined ? 20261202 : Number(process.env.WARMVM_CHAOS_SEED);
/** Longer than any command's own bounds on the demo guest: a command still running then hangs. */
const COMMAND_BOUND_MS = 150_000;
const OPS = ['start', 'stop', 'suspend', 'capture', 'reset'] as const;
type Op = (typeof OPS)[number];

interface World {
  home: string;
  config: string;
  /** What the steps so far did, for the report of a violation. */
  log: string[];
  /** CLIs killed with SIGKILL: what they left half-written is theirs to leave (a later command sets it aside or replaces it). */
  killed: Set<number>;
}

interface Ended {
  what: string;
  exitCode: number | undefined;
  signalled: 'SIGINT' | 'SIGKILL' | undefined;
  timedOut: boolean;
  json: Record<string, unknown>;
  stderr: string;
}

function argsOf(op: Op, name: string, config: string): string[] {
  switch (op) {
    case 'start':
      return ['start', '--name', name, '--config', config, '--json'];
    case 'stop':
      return ['stop', '--name', name, '--json'];
    case 'suspend':
      return ['stop', '--suspend', '--name', name, '--json'];
    case 'capture':
      return ['capture', '--name', name, '--config', config, '--json'];
    case 'reset':
      return ['reset', '--name', name, '--json'];
  }
}

/** Runs one CLI command; `cut` sends a signal after a delay. */
async function runCommand(world: World, op: Op, name: string, cut?: { signal: 'SIGINT' | 'SIGKILL'; afterMs: number }): Promise<Ended> {
  const child = execa(process.execPath, [CLI, ...argsOf(op, name, world.config)], {
    env: { WARMVM_HOME: world.home },
    reject: false,
    stdin: 'ignore',
    timeout: COMMAND_BOUND_MS,
  });
  let signalled: Ended['signalled'];
  const timer = cut
    ? setTimeout(() => {
        signalled = cut.signal;
        if (cut.signal === 'SIGKILL' && child.pid !== undefined) world.killed.add(child.pid);
        child.kill(cut.signal);
      }, cut.afterMs)
    : undefined;
  const result = await child;
  clearTimeout(timer);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(String(result.stdout).trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  } catch {
    // no JSON: checked below
  }
  const what = `${op} ${name}${cut ? ` (${cut.signal} after ${cut.afterMs} ms)` : ''}`;
  return {
    what,
    exitCode: result.exitCode,
    signalled: result.isTerminated || result.exitCode === 130 ? signalled : undefined,
    timedOut: result.timedOut,
    json,
    stderr: String(result.stderr),
  };
}

/** Exit 0, or a clear error: exit 1 (2 for usage) with a JSON error naming a code of warmvm's own; 130 after Ctrl-C; anything after kill -9. */
function unclear(ended: Ended): string | undefined {
  if (ended.timedOut) return `${ended.what} still ran after ${COMMAND_BOUND_MS} ms`;
  if (ended.signalled === 'SIGKILL') return undefined;
  if (ended.exitCode === 0) return undefined;
  // Ctrl-C: set only when it exited 130 (its handler ran) or died of the signal (Node was still loading it).
  if (ended.signalled === 'SIGINT') return undefined;
  const error = ended.json.error as { code?: string; message?: string } | undefined;
  if (ended.exitCode === 1 && typeof error?.code === 'string' && error.code !== 'E_UNEXPECTED' && typeof error.message === 'string') return undefined;
  return `${ended.what} ended with exit ${ended.exitCode} and no clear error: ${ended.stderr.slice(-400)} ${JSON.stringify(ended.json).slice(0, 400)}`;
}

/** What must hold whenever no command runs. */
async function violations(world: World): Promise<string[]> {
  const found: string[] = [];
  for (const name of NAMES) {
    const qemus = await liveInstanceQemus(name, world.home);
    if (qemus.length > 1) found.push(`instance ${name} has ${qemus.length} QEMUs: ${qemus.join(', ')}`);
    const recorded = await readPidFile(instancePaths(world.home, name).pidFile);
    for (const pid of qemus) if (pid !== recorded) found.push(`QEMU ${pid} of ${name} is named by no pidfile (it names ${recorded})`);
  }
  found.push(...(await strayQemus(world.home)));
  found.push(...(await snapshotProblems(world.home)));
  found.push(...(await leftovers(world.home, world.killed)));
  return found;
}

/** Live QEMUs whose command line names a path in `home`. */
async function qemusUnder(home: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const argv = await processCommandLine(pid);
    if (argv?.[0]?.includes('qemu-system') && argv.some((arg) => arg.includes(`${home}/`)) && (await isProcessAlive(pid))) pids.push(pid);
  }
  return pids;
}

/** A live QEMU whose paths lie in this home but in no instance folder of ours. */
async function strayQemus(home: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await qemusUnder(home)) {
    const argv = (await processCommandLine(pid)) ?? [];
    if (!NAMES.some((name) => argv.some((arg) => arg.includes(`path=${instancePaths(home, name).qmpSocket},`)))) found.push(`QEMU ${pid} belongs to no instance`);
  }
  return found;
}

/** Every published snapshot: a manifest, its files at the sizes it records, read-only. */
async function snapshotProblems(home: string): Promise<string[]> {
  const root = homePaths(home).snapshots;
  const found: string[] = [];
  for (const entry of await readdir(root).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{16}$/.test(entry)) continue;
    const dir = join(root, entry);
    let manifest: ReturnType<typeof parseManifest>;
    try {
      manifest = parseManifest(await readFile(join(dir, 'manifest.json'), 'utf8'));
    } catch (error) {
      found.push(`snapshot ${entry} has no readable manifest: ${(error as Error).message}`);
      continue;
    }
    for (const file of [manifest.files.memory, manifest.files.state, ...(manifest.files.disk ? [manifest.files.disk] : [])]) {
      const info = await stat(join(dir, file.name)).catch(() => undefined);
      if (!info) found.push(`snapshot ${entry} lacks ${file.name}`);
      else if (info.size !== file.bytes || (info.mode & 0o777) !== SNAPSHOT_FILE_MODE)
        found.push(`snapshot ${entry}: ${file.name} is ${info.size} bytes, mode ${(info.mode & 0o777).toString(8)}`);
    }
  }
  return found;
}

/** Temp files and half-made captures whose writer is gone. */
async function leftovers(home: string, killed: ReadonlySet<number>): Promise<string[]> {
  const found: string[] = [];
  for (const top of ['snapshots', 'instances']) {
    for (const entry of await readdir(join(home, top), { recursive: true }).catch(() => [] as string[])) {
      const owner = /(?:\.tmp-|^\.capture-|\/\.capture-|\.lock-[0-9a-f]+\.|lock\.)(\d+)/.exec(entry)?.[1];
      if (owner !== undefined && !killed.has(Number(owner)) && !(await isProcessAlive(Number(owner)))) found.push(`${top}/${entry} is left by process ${owner}, which is gone`);
    }
  }
  return found;
}

class Step implements fc.AsyncCommand<object, World> {
  constructor(
    readonly op: Op,
    readonly name: string,
    readonly race?: { op: Op; name: string },
    readonly cut?: { signal: 'SIGINT' | 'SIGKILL'; afterMs: number },
  ) {}
  check(): boolean {
    return true;
  }
  async run(_model: object, world: World): Promise<void> {
    const ended = await Promise.all([runCommand(world, this.op, this.name, this.cut), ...(this.race ? [runCommand(world, this.race.op, this.race.name)] : [])]);
    for (const one of ended)
      world.log.push(`${one.what}: exit ${one.exitCode}${one.signalled ? ` (${one.signalled})` : ''}${one.json.error ? ` ${(one.json.error as { code: string }).code}` : ''}`);
    const problems = [...ended.flatMap((one) => unclear(one) ?? []), ...(await violations(world))];
    if (problems.length > 0) throw new Error(`after ${this.toString()}:\n  ${problems.join('\n  ')}\nsteps so far:\n  ${world.log.join('\n  ')}`);
  }
  toString(): string {
    return `${this.op} ${this.name}${this.race ? ` ‖ ${this.race.op} ${this.race.name}` : ''}${this.cut ? ` (${this.cut.signal} after ${this.cut.afterMs} ms)` : ''}`;
  }
}

const op = fc.constantFrom(...OPS);
const name = fc.constantFrom(...NAMES);
const steps = fc.commands(
  [
    fc.tuple(op, name).map(([o, n]) => new Step(o, n)),
    fc.tuple(op, name, op, name).map(([o, n, o2, n2]) => new Step(o, n, { op: o2, name: n2 })),
    fc
      .tuple(op, name, fc.constantFrom('SIGINT' as const, 'SIGKILL' as const), fc.integer({ min: 0, max: 4_000 }))
      .map(([o, n, signal, afterMs]) => new Step(o, n, undefined, { signal, afterMs })),
  ],
  { maxCommands: 6 },
);

describe('chaos: racing and cut commands on real QEMU', () => {
  const worlds: World[] = [];
  afterAll(async () => {
    for (const world of worlds) {
      for (const instance of NAMES) await cli(['stop', '--name', instance], { WARMVM_HOME: world.home });
      // A violation may be a QEMU that no pidfile names, which `stop` cannot find.
      for (const pid of await qemusUnder(world.home)) process.kill(pid, 'SIGKILL');
    }
  });

  it(
    `${RUNS} random sequences (seed ${SEED}) keep every invariant`,
    async () => {
      process.stdout.write(`chaos: WARMVM_CHAOS_SEED=${SEED}, ${RUNS} sequence(s)\n`);
      const home = join(E2E_HOME, 'chaos-home');
      // A fresh home each time: what an earlier run (or build) left is not this run's to answer for.
      for (const pid of await qemusUnder(home)) process.kill(pid, 'SIGKILL');
      await rm(home, { recursive: true, force: true });
      // The home's images are the shared e2e home's: the demo guest is built once.
      await cli(['doctor'], { WARMVM_HOME: home });
      const images = join(home, 'images');
      if (
        !(await lstat(images).then(
          (info) => info.isSymbolicLink(),
          () => false,
        ))
      ) {
        await rmdir(images).catch(() => undefined);
        await symlink(join(E2E_HOME, 'images'), images).catch(() => undefined);
      }
      const config = await caseConfig('chaos');
      // Across sequences: they share the home, so what a killed CLI left stays theirs.
      const killed = new Set<number>();
      await fc.assert(
        fc.asyncProperty(steps, async (sequence) => {
          const world: World = { home, config, log: [], killed };
          worlds.push(world);
          await fc.asyncModelRun(() => ({ model: {}, real: world }), sequence);
          // Between sequences: every instance stopped, the snapshot checked in full.
          for (const instance of NAMES) await cli(['stop', '--name', instance], { WARMVM_HOME: home });
          const verified = await cli(['snapshot', 'verify', '--json'], { WARMVM_HOME: home });
          expect(verified.exitCode, `snapshot verify after ${world.log.join('; ')}: ${verified.stdout}`).toBe(0);
          expect(await violations(world)).toEqual([]);
          process.stdout.write(`chaos: ${sequence.toString()}\n`);
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
    },
    RUNS * 6 * 2 * COMMAND_BOUND_MS,
  );
});
