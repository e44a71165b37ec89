import { homePaths } from '../../adapters/instance/paths.js';
import { blobCacheDir, blobCacheUsage, clearBlobCache } from '../../adapters/snapshot/blob-cache.js';
import {
  bytesOnDisk,
  captureLockHolder,
  isStoreKey,
  listDeadLeftovers,
  listSetAsides,
  removeSnapshot,
  removeStoreDir,
  snapshotPaths,
  withCaptureLock,
  type SetAsideVersion,
  type StoreLeftover,
} from '../../adapters/snapshot/store.js';
import { WarmvmError } from '../../adapters/support/errors.js';
import { listInstances, listSnapshots, runningFrom, type SnapshotSummary } from '../../adapters/vm/instances.js';
import type { Output } from '../output.js';
import { sizeText } from './list.js';

const NONE = '—';

type SetAsideRow = SetAsideVersion & { bytesOnDisk: number };
type LeftoverRow = StoreLeftover & { bytesOnDisk: number };

/** What the store holds now, read without changing it. */
interface Store {
  root: string;
  snapshots: SnapshotSummary[];
  setAsides: SetAsideRow[];
  leftovers: LeftoverRow[];
  /** Config key → the live process that holds its capture lock (a capture in progress). */
  capturing: Map<string, number>;
}

async function readStore(home: string): Promise<Store> {
  const root = homePaths(home).snapshots;
  const instances = await listInstances(home, { health: false });
  const snapshots = await listSnapshots(home, instances);
  const setAsides = await Promise.all((await listSetAsides(root)).map(async (version) => ({ ...version, bytesOnDisk: await bytesOnDisk(version.dir) })));
  const leftovers = await Promise.all((await listDeadLeftovers(root)).map(async (leftover) => ({ ...leftover, bytesOnDisk: await bytesOnDisk(leftover.dir) })));
  const keys = new Set([...snapshots.map((snapshot) => snapshot.key), ...setAsides.map((version) => version.key), ...leftovers.flatMap((leftover) => leftover.key ?? [])]);
  const capturing = new Map<string, number>();
  for (const key of keys) {
    const holder = await captureLockHolder(snapshotPaths(root, key));
    if (holder !== undefined) capturing.set(key, holder);
  }
  return { root, snapshots, setAsides, leftovers, capturing };
}

// ---- snapshot ls ----------------------------------------------------------------------------

/** One row of `snapshot ls --json`: every field always there, null when unknown. */
interface LsRow {
  key: string;
  /** False for a key whose only versions are set aside (listed with --all). */
  current: boolean;
  dir: string | null;
  problem: string | null;
  capturedBy: string | null;
  createdAt: string | null;
  memoryMb: number | null;
  qemuVersion: string | null;
  machineType: string | null;
  accel: string | null;
  cpuModel: string | null;
  bytesOnDisk: number;
  usedBy: string[];
  capturingPid: number | null;
  setAside: { name: string; dir: string; setAsideAt: string | null; reason: string | null; bytesOnDisk: number }[];
}

/** `warmvm snapshot ls [--all]`: a row per snapshot, its set-aside versions under it; with --all also the keys that only have set-aside versions. */
export async function snapshotLsCommand(options: { all: boolean; home: string; output: Output }): Promise<number> {
  const store = await readStore(options.home);
  const current = new Set(store.snapshots.map((snapshot) => snapshot.key));
  const orphans = store.setAsides.filter((version) => !current.has(version.key));
  const rows: LsRow[] = store.snapshots.map((snapshot) => ({
    key: snapshot.key,
    current: true,
    dir: snapshotPaths(store.root, snapshot.key).dir,
    problem: snapshot.problem ?? null,
    capturedBy: snapshot.capturedBy ?? null,
    createdAt: snapshot.createdAt ?? null,
    memoryMb: snapshot.memoryMb ?? null,
    qemuVersion: snapshot.qemuVersion ?? null,
    machineType: snapshot.machineType ?? null,
    accel: snapshot.accel ?? null,
    cpuModel: snapshot.cpuModel ?? null,
    bytesOnDisk: snapshot.bytesOnDisk,
    usedBy: snapshot.usedBy,
    capturingPid: store.capturing.get(snapshot.key) ?? null,
    setAside: [],
  }));
  if (options.all) {
    for (const key of [...new Set(orphans.map((version) => version.key))]) {
      rows.push({
        key,
        current: false,
        dir: null,
        problem: null,
        capturedBy: null,
        createdAt: null,
        memoryMb: null,
        qemuVersion: null,
        machineType: null,
        accel: null,
        cpuModel: null,
        bytesOnDisk: 0,
        usedBy: [],
        capturingPid: store.capturing.get(key) ?? null,
        setAside: [],
      });
    }
    rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
  for (const version of store.setAsides) {
    rows
      .find((row) => row.key === version.key)
      ?.setAside.push({ name: version.name, dir: version.dir, setAsideAt: version.setAsideAt ?? null, reason: version.reason ?? null, bytesOnDisk: version.bytesOnDisk });
  }
  const hidden = options.all ? [] : orphans;
  options.output.result(rows, lsLines(store.root, rows, hidden).join('\n'));
  return 0;
}

function lsLines(root: string, rows: LsRow[], hidden: SetAsideRow[]): string[] {
  const lines: string[] = [];
  if (rows.length === 0) lines.push(`no snapshots in ${root}`);
  else {
    const header = ['KEY', 'CAPTURED BY', 'CREATED', 'SIZE', 'MEMORY', 'QEMU', 'MACHINE', 'ACCEL', 'CPU', 'USED BY'];
    const cells = rows.map((row) => [
      row.key,
      row.capturedBy ?? NONE,
      row.createdAt ?? NONE,
      row.current ? sizeText(row.bytesOnDisk) : NONE,
      row.memoryMb === null ? NONE : `${row.memoryMb} MB`,
      row.qemuVersion ?? NONE,
      row.machineType ?? NONE,
      row.accel ?? NONE,
      row.cpuModel ?? NONE,
      row.usedBy.length === 0 ? NONE : row.usedBy.join(', '),
    ]);
    const table = columns([header, ...cells]);
    lines.push(table[0] as string);
    for (const [index, row] of rows.entries()) {
      lines.push(table[index + 1] as string);
      if (!row.current) lines.push('  no current snapshot: only set-aside versions');
      if (row.problem !== null) lines.push(`  problem: ${row.problem}`);
      if (row.capturingPid !== null) lines.push(`  capture in progress: pid ${row.capturingPid} holds its capture lock`);
      for (const version of row.setAside) {
        lines.push(`  set aside ${version.setAsideAt ?? version.name} (${sizeText(version.bytesOnDisk)}): ${version.reason ?? 'no reason.txt'}`);
      }
    }
    const asides = rows.reduce((count, row) => count + row.setAside.length, 0);
    const bytes = rows.reduce((sum, row) => sum + row.bytesOnDisk + row.setAside.reduce((total, version) => total + version.bytesOnDisk, 0), 0);
    const current = rows.filter((row) => row.current).length;
    lines.push(`${current} snapshot(s)${asides === 0 ? '' : `, ${asides} set-aside version(s)`}; ${sizeText(bytes)} on disk`);
  }
  if (hidden.length > 0) {
    const keys = new Set(hidden.map((version) => version.key)).size;
    const bytes = hidden.reduce((sum, version) => sum + version.bytesOnDisk, 0);
    lines.push(`(${hidden.length} set-aside version(s) of ${keys} key(s) with no current snapshot, ${sizeText(bytes)}: --all lists them; "warmvm snapshot prune" removes them)`);
  }
  return lines;
}

// ---- snapshot rm ----------------------------------------------------------------------------

interface Removed {
  key: string;
  dirs: string[];
  bytesFreed: number;
  /** Running instances that still map its memory (only with --force). */
  usedBy: string[];
}

/**
 * `warmvm snapshot rm KEY... [--force]`: removes each snapshot and its set-aside versions, each
 * under its config's capture lock. Refuses them all, removing nothing, when one is not a key of
 * the store, one is in use (unless --force), or a capture of one is in progress.
 */
export async function snapshotRmCommand(options: { keys: string[]; force: boolean; home: string; output: Output }): Promise<number> {
  const keys = [...new Set(options.keys)];
  const bad = keys.filter((key) => !isStoreKey(key));
  const root = homePaths(options.home).snapshots;
  if (bad.length > 0) {
    throw new WarmvmError('E_SNAPSHOT_KEY', `not a snapshot key: ${bad.map((key) => JSON.stringify(key)).join(', ')}; a key is the name of a folder in ${root}, not a path`, {
      hint: '"warmvm snapshot ls" lists the keys; nothing was removed',
    });
  }
  const store = await readStore(options.home);
  const known = new Set([...store.snapshots.map((snapshot) => snapshot.key), ...store.setAsides.map((version) => version.key)]);
  const unknown = keys.filter((key) => !known.has(key));
  if (unknown.length > 0) {
    throw new WarmvmError('E_SNAPSHOT_MISSING', `no snapshot ${unknown.map((key) => JSON.stringify(key)).join(', ')} in ${root}`, {
      hint: '"warmvm snapshot ls" lists them (--all also the keys with only set-aside versions); nothing was removed',
    });
  }
  const usedBy = (key: string): string[] => store.snapshots.find((snapshot) => snapshot.key === key)?.usedBy ?? [];
  const inUse = options.force ? [] : keys.filter((key) => usedBy(key).length > 0);
  if (inUse.length > 0) {
    const names = [...new Set(inUse.flatMap(usedBy))];
    throw new WarmvmError('E_SNAPSHOT_IN_USE', inUse.map((key) => `snapshot ${key} is used by running ${usedBy(key).join(', ')}`).join('; ') + '; nothing was removed', {
      hint:
        `stop ${names.length === 1 ? 'it' : 'them'} first (${names.map((name) => `"warmvm stop --name ${name}"`).join(', ')}), or remove it anyway with --force: ` +
        'running clones keep their memory (unlinking a mapped file leaves it whole), but their next start cold-boots and captures anew',
    });
  }
  const busy = keys.filter((key) => store.capturing.has(key));
  if (busy.length > 0) throw captureBusy(busy.map((key) => [key, store.capturing.get(key) as number]));

  const removed: Removed[] = [];
  const raced: [string, number][] = [];
  for (const key of keys) {
    const paths = snapshotPaths(root, key);
    const bytes = (store.snapshots.find((snapshot) => snapshot.key === key)?.bytesOnDisk ?? 0) + sum(store.setAsides.filter((version) => version.key === key));
    const outcome = await withCaptureLock(paths, () => removeSnapshot(paths));
    if ('holder' in outcome) raced.push([key, outcome.holder]);
    else removed.push({ key, dirs: outcome.done, bytesFreed: bytes, usedBy: usedBy(key) });
  }
  if (raced.length > 0) {
    for (const entry of removed) options.output.progress.line(`removed ${entry.key}`);
    throw captureBusy(raced);
  }
  const bytesFreed = removed.reduce((total, entry) => total + entry.bytesFreed, 0);
  options.output.result(
    { removed, bytesFreed },
    [
      ...removed.flatMap((entry) => [
        `removed ${entry.key} (${entry.dirs.length} folder(s), ${sizeText(entry.bytesFreed)})`,
        ...(entry.usedBy.length === 0
          ? []
          : [`  still mapped by running ${entry.usedBy.join(', ')}: its memory is freed when they stop; their next start cold-boots and captures anew`]),
      ]),
      `freed ${sizeText(bytesFreed)}`,
    ].join('\n'),
  );
  return 0;
}

function captureBusy(held: [string, number][]): WarmvmError {
  return new WarmvmError('E_CAPTURE_BUSY', held.map(([key, pid]) => `a capture of snapshot ${key} is in progress (pid ${pid} holds its capture lock)`).join('; '), {
    hint: 'wait for that start to finish, then run this again',
  });
}

function sum(items: { bytesOnDisk: number }[]): number {
  return items.reduce((total, item) => total + item.bytesOnDisk, 0);
}

// ---- snapshot prune -------------------------------------------------------------------------

/** One folder that prune removes or keeps, with why. */
interface PruneItem {
  kind: 'snapshot' | 'set-aside' | 'leftover' | 'blob-cache';
  /** The config key; null for a capture folder, whose key its name does not say. */
  key: string | null;
  name: string;
  dir: string;
  capturedBy: string | null;
  createdAt: string | null;
  bytesOnDisk: number;
  usedBy: string[];
  why: string;
}

/**
 * `warmvm snapshot prune [--keep N] [--dry-run]`: the snapshots grouped by the instance that
 * captured them, the newest N of each kept, the others removed, with every set-aside version and
 * every folder a dead warmvm left; never one that a running instance uses, nor anything of a
 * config whose capture lock a live process holds.
 */
export async function snapshotPruneCommand(options: { keep: number; dryRun: boolean; keepBlobs?: boolean; home: string; output: Output }): Promise<number> {
  const store = await readStore(options.home);
  const { keep } = options;
  const remove: PruneItem[] = [];
  const kept: PruneItem[] = [];
  const item = (snapshot: SnapshotSummary, why: string): PruneItem => ({
    kind: 'snapshot',
    key: snapshot.key,
    name: snapshot.key,
    dir: snapshotPaths(store.root, snapshot.key).dir,
    capturedBy: snapshot.capturedBy ?? null,
    createdAt: snapshot.createdAt ?? null,
    bytesOnDisk: snapshot.bytesOnDisk,
    usedBy: snapshot.usedBy,
    why,
  });
  const capturing = (key: string | null): string | undefined => {
    const pid = key === null ? undefined : store.capturing.get(key);
    return pid === undefined ? undefined : `a capture is in progress (pid ${pid} holds its capture lock)`;
  };

  const groups = new Map<string, SnapshotSummary[]>();
  for (const snapshot of store.snapshots) {
    if (snapshot.capturedBy === undefined) {
      kept.push(item(snapshot, `its manifest cannot be read (${snapshot.problem}), so it is in no group; "warmvm snapshot rm ${snapshot.key}" removes it`));
      continue;
    }
    groups.set(snapshot.capturedBy, [...(groups.get(snapshot.capturedBy) ?? []), snapshot]);
  }
  for (const [capturedBy, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const [index, snapshot] of newestFirst(group).entries()) {
      const busy = capturing(snapshot.key);
      if (index < keep) kept.push(item(snapshot, index === 0 ? `the newest captured by "${capturedBy}"` : `one of the newest ${keep} captured by "${capturedBy}"`));
      else if (snapshot.usedBy.length > 0) kept.push(item(snapshot, `used by running ${snapshot.usedBy.join(', ')}`));
      else if (busy) kept.push(item(snapshot, busy));
      else remove.push(item(snapshot, keep === 0 ? 'no running instance uses it (--keep 0)' : `older than the newest ${keep} captured by "${capturedBy}"`));
    }
  }
  for (const version of store.setAsides) {
    const entry: PruneItem = {
      kind: 'set-aside',
      key: version.key,
      name: version.name,
      dir: version.dir,
      capturedBy: null,
      createdAt: null,
      bytesOnDisk: version.bytesOnDisk,
      usedBy: [],
      why: '',
    };
    const busy = capturing(version.key);
    if (busy) kept.push({ ...entry, why: busy });
    else remove.push({ ...entry, why: `set aside${version.setAsideAt ? ` at ${version.setAsideAt}` : ''}: ${version.reason ?? 'no reason.txt'}` });
  }
  for (const leftover of store.leftovers) {
    const what = leftover.kind === 'capture' ? 'a capture that was never committed' : `the old snapshot of a replacement of ${leftover.key}`;
    const entry: PruneItem = {
      kind: 'leftover',
      key: leftover.key ?? null,
      name: leftover.name,
      dir: leftover.dir,
      capturedBy: null,
      createdAt: null,
      bytesOnDisk: leftover.bytesOnDisk,
      usedBy: [],
      why: '',
    };
    const busy = capturing(entry.key);
    if (busy) kept.push({ ...entry, why: busy });
    else remove.push({ ...entry, why: `${what}, left by warmvm pid ${leftover.pid}, which is gone` });
  }

  const cache = await blobCacheUsage(options.home);
  if (cache.bytesOnDisk > 0) {
    const entry: PruneItem = {
      kind: 'blob-cache',
      key: null,
      name: 'blobs',
      dir: blobCacheDir(options.home),
      capturedBy: null,
      createdAt: null,
      bytesOnDisk: cache.bytesOnDisk,
      usedBy: [],
      why: '',
    };
    const busy = cache.busy.length === 0 ? '' : ` (but the ${cache.busy.length} blob(s) a pull is downloading now)`;
    if (options.keepBlobs) kept.push({ ...entry, why: 'the transfer cache (--keep-blobs)' });
    else remove.push({ ...entry, why: `the transfer cache: compressed copies of snapshots pushed, pulled, exported or imported${busy}; a push compresses again` });
  }
  const removed = options.dryRun ? remove : await removeAll(options.home, store.root, remove, kept);
  const bytesFreed = sum(removed);
  options.output.result({ dryRun: options.dryRun, keep, removed, kept, bytesFreed }, pruneLines(options.dryRun, removed, kept, bytesFreed).join('\n'));
  return 0;
}

/** `--keep N`: a whole number, 0 or more. */
export function parseKeep(text: string): number {
  if (!/^\d+$/.test(text.trim()))
    throw new WarmvmError('E_USAGE', `--keep ${text} is not a whole number`, { hint: 'give how many snapshots of each capturing instance to keep: 1 (the default), 2, ...' });
  return Number(text.trim());
}

/** Newest first by createdAt (an unreadable time counts as oldest), then by key. */
function newestFirst(group: SnapshotSummary[]): SnapshotSummary[] {
  const time = (snapshot: SnapshotSummary): number => {
    const ms = Date.parse(snapshot.createdAt ?? '');
    return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
  };
  return [...group].sort((a, b) => time(b) - time(a) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Removes the planned folders key by key, each key's under its capture lock; a snapshot is
 * looked at again under it, and kept when a running instance has begun to use it since.
 * What could not be removed moves to `kept`, with why.
 */
async function removeAll(home: string, root: string, planned: PruneItem[], kept: PruneItem[]): Promise<PruneItem[]> {
  const removed = new Set<PruneItem>();
  for (const entry of planned.filter((candidate) => candidate.key === null)) {
    if (entry.kind === 'blob-cache') await clearBlobCache(home);
    else await removeStoreDir(root, entry.name);
    removed.add(entry);
  }
  const keys = [...new Set(planned.flatMap((entry) => entry.key ?? []))];
  for (const key of keys) {
    const mine = planned.filter((entry) => entry.key === key);
    const outcome = await withCaptureLock(snapshotPaths(root, key), async () => {
      const instances = await listInstances(home, { health: false });
      for (const entry of mine) {
        const users = entry.kind === 'snapshot' ? runningFrom(instances, key) : [];
        if (users.length > 0) {
          kept.push({ ...entry, usedBy: users, why: `used by running ${users.join(', ')}` });
          continue;
        }
        await removeStoreDir(root, entry.name);
        removed.add(entry);
      }
    });
    if ('holder' in outcome) for (const entry of mine) kept.push({ ...entry, why: `a capture is in progress (pid ${outcome.holder} holds its capture lock)` });
  }
  return planned.filter((entry) => removed.has(entry));
}

function pruneLines(dryRun: boolean, removed: PruneItem[], kept: PruneItem[], bytesFreed: number): string[] {
  const describe = (entry: PruneItem): string => {
    const facts =
      entry.kind === 'snapshot' ? `snapshot captured by "${entry.capturedBy}" at ${entry.createdAt ?? NONE}, ` : entry.kind === 'set-aside' ? 'set-aside version, ' : '';
    return `${entry.name} (${facts}${sizeText(entry.bytesOnDisk)}): ${entry.why}`;
  };
  const verb = dryRun ? 'would remove' : 'removed';
  return [
    ...(removed.length === 0 ? ['nothing to prune'] : removed.map((entry) => `${verb} ${describe(entry)}`)),
    ...kept.map((entry) => `kept ${describe(entry)}`),
    dryRun ? `would free ${sizeText(bytesFreed)} (--dry-run: nothing was removed)` : `freed ${sizeText(bytesFreed)}`,
  ];
}

/** Columns padded to their widest cell, two spaces apart. */
function columns(rows: string[][]): string[] {
  const widths = (rows[0] as string[]).map((_, column) => Math.max(...rows.map((row) => (row[column] as string).length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] as number))).join('  '));
}
