import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SnapshotManifest } from '../../../adapters/snapshot/manifest.js';
import {
  FROZEN_DISK,
  MEMORY_FILE,
  STATE_FILE,
  commitCapture,
  createCaptureDir,
  readSnapshot,
  removeSnapshot,
  setAside,
  snapshotPaths,
  type SnapshotPaths,
} from '../../../adapters/snapshot/store.js';
import { manifestFixture } from '../../helpers/manifest-fixture.js';
import { commandsReplayPath, propertyParams } from '../../helpers/property-params.js';
import { useTempDirs } from '../../helpers/temp.js';

/**
 * DESIGN invariants 5 and 6 on real folders, as a model-based test (fc.commands): captures that
 * commit, captures whose warmvm was killed at each point of the way (the test leaves on disk what
 * the kill would have left), set-asides, removals, and restarts. After every step the store must
 * show the last committed snapshot whole (every file, every byte, nothing from another capture)
 * or nothing when none was committed since the last set-aside or removal; set-aside snapshots
 * keep their files and their reason; no leftover of a dead warmvm survives the next capture.
 */

const NAME = 'web';
/** A neighbour whose name starts like NAME's: nothing done to NAME may touch it. */
const NEIGHBOUR = 'web2';
const SET_ASIDE_KEEP = 2;

const temp = useTempDirs();

// ---------------------------------------------------------------------------------------------
// Generations: each capture writes files no other capture could have written.

interface Shape {
  withDisk: boolean;
  stateBytes: number;
}

/** A capture's files in the order a capture writes them, the manifest last. */
function generationFiles(generation: number, shape: Shape): [string, string][] {
  const state = `state of generation ${generation};`.repeat(Math.ceil(shape.stateBytes / 24) + 1).slice(0, shape.stateBytes + 24);
  const files: [string, string][] = [
    [MEMORY_FILE, `memory of generation ${generation}: ${state}`],
    [STATE_FILE, state],
  ];
  if (shape.withDisk) files.push([FROZEN_DISK, `frozen disk of generation ${generation}`]);
  files.push(['manifest.json', JSON.stringify(manifestFor(generation))]);
  return files;
}

function manifestFor(generation: number): SnapshotManifest {
  return manifestFixture({ createdAt: '2026-11-23T00:00:00.000Z', capturedBy: `generation-${generation}`, specHash: `generation-${generation}` });
}

async function writeFiles(dir: string, files: [string, string][]): Promise<void> {
  for (const [name, content] of files) await writeFile(join(dir, name), content);
}

/** A folder's files and their contents. */
async function filesIn(dir: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) found[name] = await readFile(join(dir, name), 'utf8');
  return found;
}

// ---------------------------------------------------------------------------------------------
// Processes: leftovers name the pid of the warmvm that made them.

/** Pids above Linux's largest pid_max (2^22) never name a process. */
let lastDeadPid = 2 ** 22;
function deadPid(): number {
  for (;;) {
    lastDeadPid += 1;
    try {
      process.kill(lastDeadPid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return lastDeadPid;
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `.capture-<pid>-…` and `<name>.replaced-<pid>-…` folders whose process is dead. */
async function deadLeftovers(root: string): Promise<string[]> {
  return (await readdir(root)).filter((entry) => {
    const match = /^\.capture-(\d+)-/.exec(entry) ?? /\.replaced-(\d+)-/.exec(entry);
    return match !== null && !isAlive(Number(match[1]));
  });
}

// ---------------------------------------------------------------------------------------------
// The model and the real store.

interface Generation {
  generation: number;
  files: Record<string, string>;
}

interface StoreModel {
  generations: number;
  /** What readSnapshot must find: the last snapshot committed, unless set aside or removed since. */
  committed: Generation | undefined;
  /** Set aside, oldest first, with their reasons (the store keeps the newest two). */
  setAside: { generation: Generation; reason: string }[];
  /** Capture folders of a live warmvm: never garbage. */
  liveCaptures: string[];
}

interface Store {
  paths: SnapshotPaths;
  neighbour: Record<string, string>;
}

function newGeneration(model: StoreModel, shape: Shape): { generation: Generation; files: [string, string][] } {
  model.generations += 1;
  const files = generationFiles(model.generations, shape);
  return { generation: { generation: model.generations, files: Object.fromEntries(files) }, files };
}

/** What every step must leave: compared after each one, through readSnapshot as a start would. */
async function checkStore(model: StoreModel, store: Store): Promise<void> {
  const { paths } = store;
  const lookup = await readSnapshot(paths);
  if (model.committed) {
    expect(lookup, 'readSnapshot finds the last committed snapshot').toMatchObject({
      kind: 'found',
      manifest: { capturedBy: `generation-${model.committed.generation.toString()}` },
    });
    expect(await filesIn(paths.dir), 'the snapshot holds all its files and nothing else').toEqual(model.committed.files);
  } else {
    expect(lookup, 'readSnapshot finds nothing').toEqual({ kind: 'missing' });
  }

  const asides = (await readdir(paths.root)).filter((entry) => entry.startsWith(`${NAME}.set-aside-`)).sort();
  const expectedAsides = model.setAside.slice(-SET_ASIDE_KEEP);
  expect(await Promise.all(asides.map((entry) => filesIn(join(paths.root, entry)))), 'set-aside snapshots, oldest first').toEqual(
    expectedAsides.map(({ generation, reason }) => ({ ...generation.files, 'reason.txt': `${reason}\n` })),
  );

  const entries = await readdir(paths.root);
  expect(
    entries.filter((entry) => entry.includes('.replaced-')),
    'no replaced snapshot is left once a start has read the store',
  ).toEqual([]);
  for (const live of model.liveCaptures) expect(entries, 'a live warmvm keeps its capture folder').toContain(live);
  expect(await filesIn(snapshotPaths(paths.root, NEIGHBOUR).dir), 'the neighbouring snapshot is untouched').toEqual(store.neighbour);
}

/** Right after createCaptureDir: nothing of a dead warmvm is left. */
async function checkNoDeadLeftovers(store: Store): Promise<void> {
  expect(await deadLeftovers(store.paths.root), 'leftovers of dead processes after createCaptureDir').toEqual([]);
}

// ---------------------------------------------------------------------------------------------
// The steps.

class CaptureCommits implements fc.AsyncCommand<StoreModel, Store> {
  constructor(readonly shape: Shape) {}
  check = (): boolean => true;
  async run(model: StoreModel, store: Store): Promise<void> {
    const { generation, files } = newGeneration(model, this.shape);
    const dir = await createCaptureDir(store.paths);
    await checkNoDeadLeftovers(store);
    await writeFiles(dir, files);
    await commitCapture(dir, store.paths);
    model.committed = generation;
    expect(await readdir(store.paths.root), 'the capture folder became the snapshot').not.toContain(dir.slice(store.paths.root.length + 1));
    await checkStore(model, store);
  }
  toString = (): string => `capture commits (${this.shape.stateBytes} B state${this.shape.withDisk ? ', disk' : ''})`;
}

/** Where a capture's warmvm is killed: what it did up to there stays on disk, nothing after. */
type KillPoint = { at: 'created' } | { at: 'writing'; complete: number } | { at: 'betweenRenames' } | { at: 'beforeRemovingOld' };

class CaptureKilled implements fc.AsyncCommand<StoreModel, Store> {
  constructor(
    readonly shape: Shape,
    readonly kill: KillPoint,
  ) {}
  check = (): boolean => true;
  async run(model: StoreModel, store: Store): Promise<void> {
    const { paths } = store;
    const { generation, files } = newGeneration(model, this.shape);
    const pid = deadPid();
    // The warmvm starts its capture as any would, then the kill makes its pid a dead one.
    const made = await createCaptureDir(paths);
    const dir = join(paths.root, `.capture-${pid}-${Date.now()}`);
    await rename(made, dir);
    if (this.kill.at === 'writing') {
      const complete = Math.min(this.kill.complete, files.length - 1);
      await writeFiles(dir, files.slice(0, complete));
      const [name, content] = files[complete]!;
      await writeFile(join(dir, name), content.slice(0, Math.floor(content.length / 2)));
    } else if (this.kill.at !== 'created') {
      await writeFiles(dir, files);
      // commitCapture's steps, up to the kill.
      await rename(paths.dir, `${paths.dir}.replaced-${pid}-${Date.now()}`).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error; // no snapshot yet: nothing to move aside
      });
      if (this.kill.at === 'beforeRemovingOld') {
        await rename(dir, paths.dir);
        model.committed = generation;
      }
    }
    await checkStore(model, store);
  }
  toString = (): string => `capture killed ${this.kill.at}${this.kill.at === 'writing' ? ` after ${this.kill.complete} files` : ''}`;
}

class SetAside implements fc.AsyncCommand<StoreModel, Store> {
  constructor(readonly reason: string) {}
  check = (): boolean => true;
  async run(model: StoreModel, store: Store): Promise<void> {
    const target = await setAside(store.paths, this.reason);
    if (model.committed) {
      expect(target, 'setAside names where the snapshot went').toBeDefined();
      model.setAside.push({ generation: model.committed, reason: this.reason });
      model.committed = undefined;
    } else {
      expect(target, 'nothing to set aside').toBeUndefined();
    }
    await checkStore(model, store);
  }
  toString = (): string => `set aside (${JSON.stringify(this.reason)})`;
}

class Remove implements fc.AsyncCommand<StoreModel, Store> {
  check = (): boolean => true;
  async run(model: StoreModel, store: Store): Promise<void> {
    await removeSnapshot(store.paths);
    model.committed = undefined;
    model.setAside = [];
    await checkStore(model, store);
  }
  toString = (): string => 'remove (reset --snapshot)';
}

/** A new warmvm starts a capture and gives up on it at once (its cleanup removes the folder). */
class Restart implements fc.AsyncCommand<StoreModel, Store> {
  check = (): boolean => true;
  async run(model: StoreModel, store: Store): Promise<void> {
    const dir = await createCaptureDir(store.paths);
    await checkNoDeadLeftovers(store);
    await rm(dir, { recursive: true, force: true });
    await checkStore(model, store);
  }
  toString = (): string => 'restart';
}

/** Another warmvm, alive, is capturing: its folder must outlive every sweep. */
class LiveCaptureElsewhere implements fc.AsyncCommand<StoreModel, Store> {
  check = (model: Readonly<StoreModel>): boolean => model.liveCaptures.length === 0;
  async run(model: StoreModel, store: Store): Promise<void> {
    const entry = `.capture-${process.ppid}-${Date.now()}`;
    await mkdir(join(store.paths.root, entry));
    model.liveCaptures.push(entry);
    await checkStore(model, store);
  }
  toString = (): string => 'a live warmvm is capturing too';
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({ withDisk: fc.boolean(), stateBytes: fc.integer({ min: 0, max: 2048 }) });
const killArb: fc.Arbitrary<KillPoint> = fc.oneof(
  fc.constant<KillPoint>({ at: 'created' }),
  fc.integer({ min: 0, max: 3 }).map((complete): KillPoint => ({ at: 'writing', complete })),
  fc.constant<KillPoint>({ at: 'betweenRenames' }),
  fc.constant<KillPoint>({ at: 'beforeRemovingOld' }),
);
const stepsArb = fc.commands(
  [
    shapeArb.map((shape) => new CaptureCommits(shape)),
    shapeArb.map((shape) => new CaptureCommits(shape)),
    fc.tuple(shapeArb, killArb).map(([shape, kill]) => new CaptureKilled(shape, kill)),
    fc.tuple(shapeArb, killArb).map(([shape, kill]) => new CaptureKilled(shape, kill)),
    fc.constantFrom("the snapshot's QEMU version is 9.2.0, this host's is 10.0.2", 'manifest.json is missing').map((reason) => new SetAside(reason)),
    fc.constant(new Remove()),
    fc.constant(new Restart()),
    fc.constant(new LiveCaptureElsewhere()),
  ],
  { maxCommands: 12, replayPath: commandsReplayPath() },
);

async function runSteps(steps: Iterable<fc.AsyncCommand<StoreModel, Store>>): Promise<void> {
  const root = join(await temp(), 'snapshots');
  const neighbourPaths = snapshotPaths(root, NEIGHBOUR);
  const neighbourFiles = generationFiles(0, { withDisk: true, stateBytes: 100 });
  await mkdir(neighbourPaths.dir, { recursive: true });
  await writeFiles(neighbourPaths.dir, neighbourFiles);
  const store: Store = { paths: snapshotPaths(root, NAME), neighbour: Object.fromEntries(neighbourFiles) };
  const model: StoreModel = { generations: 0, committed: undefined, setAside: [], liveCaptures: [] };
  try {
    await fc.asyncModelRun(() => ({ model, real: store }), steps);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

describe('snapshot store (fc.commands)', () => {
  it('shows the last committed snapshot whole, or nothing, whatever step a capture was killed at', async () => {
    await fc.assert(fc.asyncProperty(stepsArb, runSteps), propertyParams(60));
  });
});
