import { lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tryLock } from '../instance/lock.js';
import { syncDir } from '../support/durable.js';
import { setAsideFolder } from '../support/set-aside.js';
import { WarmvmError } from '../support/errors.js';
import { isProcessAlive } from '../support/process-alive.js';
import { parseManifest, type SnapshotManifest } from './manifest.js';

/**
 * One config's snapshot: `snapshots/<config-key>/`. Every instance whose config has this key
 * resumes it; the files a capture wrote are never written again.
 */
export interface SnapshotPaths {
  root: string;
  /** The config's key (its spec hash): the folder's name. */
  key: string;
  dir: string;
  manifest: string;
  memory: string;
  state: string;
  disk: string;
  /** What each file's size and times were when it was last checksummed (verify.ts). */
  verified: string;
  /** How many resumes in a row ended unhealthy after `cont` (resume-failures.ts). */
  failures: string;
  /** Held by the one start that captures this config; others wait for its snapshot. */
  captureLock: string;
}

export const MEMORY_FILE = 'mem.raw';
export const STATE_FILE = 'state.raw';
export const FROZEN_DISK = 'disk.qcow2';
/** A published snapshot's files: read-only, and the owner's alone (they hold the guest's memory). */
export const SNAPSHOT_FILE_MODE = 0o400;
const CAPTURE_PREFIX = '.capture-';
/** `<key>.replaced-<pid>-<ms>`: the old snapshot while a commit puts the new one in its place. */
const REPLACED_INFIX = '.replaced-';
const SET_ASIDE_INFIX = '.set-aside-';
const SET_ASIDE_KEEP = 2;

export function snapshotPaths(snapshotsRoot: string, key: string): SnapshotPaths {
  return inFolder(snapshotsRoot, key, join(snapshotsRoot, key));
}

function inFolder(snapshotsRoot: string, key: string, dir: string): SnapshotPaths {
  return {
    root: snapshotsRoot,
    key,
    dir,
    manifest: join(dir, 'manifest.json'),
    memory: join(dir, MEMORY_FILE),
    state: join(dir, STATE_FILE),
    disk: join(dir, FROZEN_DISK),
    verified: join(dir, 'verified.json'),
    failures: join(dir, 'resume-failures'),
    captureLock: join(snapshotsRoot, `.lock-${key}`),
  };
}

/**
 * The snapshot folder held open, its files named through `/proc/<pid>/fd/<n>/`: a resume that
 * checks, maps and loads them through these paths gets one snapshot's files, even when another
 * start sets it aside and publishes a new one in its place meanwhile. Valid while this process
 * holds it (QEMU opens them before the start ends); `close` lets it go.
 */
export async function pinSnapshot(paths: SnapshotPaths): Promise<{ paths: SnapshotPaths; close(): Promise<void> }> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(paths.dir, 'r');
  } catch (cause) {
    throw new WarmvmError('E_SNAPSHOT_MISSING', `the snapshot ${paths.dir} is gone`, { hint: 'the cold boot runs instead and captures a new one', cause });
  }
  return { paths: inFolder(paths.root, paths.key, `/proc/${process.pid}/fd/${handle.fd}`), close: () => handle.close() };
}

/** A key names a folder of the store, never a path out of it (nor a dot-file: locks, captures in progress). */
export function isStoreKey(key: string): boolean {
  return /^[^./][^/]*$/.test(key);
}

/** The config keys of the snapshots in the store (not captures in progress, set-aside or replaced ones). */
export async function listSnapshotKeys(snapshotsRoot: string): Promise<string[]> {
  const entries = await readdir(snapshotsRoot, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.') && !entry.name.includes(SET_ASIDE_INFIX) && !entry.name.includes(REPLACED_INFIX))
    .map((entry) => entry.name)
    .sort();
}

export type SnapshotLookup = { kind: 'missing' } | { kind: 'unreadable'; reason: string } | { kind: 'found'; manifest: SnapshotManifest };

/** What a start finds in the store, once a commit that a kill cut short is finished (recoverInterruptedCommit). */
export async function readSnapshot(paths: SnapshotPaths): Promise<SnapshotLookup> {
  await recoverInterruptedCommit(paths);
  let text: string;
  try {
    text = await readFile(paths.manifest, 'utf8');
  } catch {
    return (await stat(paths.dir).catch(() => undefined)) ? { kind: 'unreadable', reason: 'manifest.json is missing' } : { kind: 'missing' };
  }
  try {
    return { kind: 'found', manifest: parseManifest(text) };
  } catch (error) {
    return { kind: 'unreadable', reason: `manifest.json cannot be read: ${(error as Error).message}` };
  }
}

/**
 * A private folder beside the snapshots for one capture. Nothing in it is visible as a
 * snapshot until `commitCapture` renames it into place.
 */
export async function createCaptureDir(paths: SnapshotPaths): Promise<string> {
  await mkdir(paths.root, { recursive: true });
  await recoverInterruptedCommit(paths);
  await removeAbandonedCaptures(paths.root);
  const dir = join(paths.root, `${CAPTURE_PREFIX}${process.pid}-${Date.now()}`);
  await mkdir(dir);
  return dir;
}

/**
 * Puts a complete capture in place of the old snapshot; the old one is removed only after. A
 * kill between the two renames leaves no `<name>/`: recoverInterruptedCommit puts the old one back.
 */
export async function commitCapture(captureDir: string, paths: SnapshotPaths): Promise<void> {
  const old = `${paths.dir}${REPLACED_INFIX}${process.pid}-${Date.now()}`;
  const hadOld = (await stat(paths.dir).catch(() => undefined)) !== undefined;
  // Its files were flushed one by one; now their names, then the rename that publishes them.
  await syncDir(captureDir);
  if (hadOld) await rename(paths.dir, old);
  try {
    await rename(captureDir, paths.dir);
  } catch (cause) {
    if (hadOld) await rename(old, paths.dir).catch(() => undefined);
    throw new WarmvmError('E_SNAPSHOT_COMMIT', `cannot put the new snapshot in place at ${paths.dir}`, { hint: 'check the disk space and permissions of the warmvm home', cause });
  }
  await syncDir(paths.root);
  // Clones still running from the old one keep their mapping: unlinking a mapped file leaves it whole.
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/**
 * Moves a snapshot that cannot be resumed out of the way, with its reason beside it, so the
 * next capture can take its place and a person can still look at it. Only the newest few are kept.
 */
export async function setAside(paths: SnapshotPaths, reason: string): Promise<string | undefined> {
  await recoverInterruptedCommit(paths);
  if (!(await stat(paths.dir).catch(() => undefined))) return undefined;
  return await setAsideFolder(paths.dir, join(paths.root, `${paths.key}${SET_ASIDE_INFIX}`), reason, SET_ASIDE_KEEP);
}

/** Removes the snapshot and anything set aside for it. */
export async function removeSnapshot(paths: SnapshotPaths): Promise<string[]> {
  const name = paths.key;
  const entries = await readdir(paths.root).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const entry of entries) {
    if (entry === name || entry.startsWith(`${name}${SET_ASIDE_INFIX}`) || entry.startsWith(`${name}${REPLACED_INFIX}`)) {
      await rm(join(paths.root, entry), { recursive: true, force: true });
      removed.push(join(paths.root, entry));
    }
  }
  return removed;
}

/**
 * Finishes a commitCapture that a kill cut short, going by what it left (of dead processes only:
 * a live one may be mid-commit). No `<name>/`: it was killed between its two renames, and the old
 * snapshot is still the last one committed, so it goes back. `<name>/` present: it is whole (only a
 * rename of a finished capture puts it there), and what it replaced is garbage.
 */
export async function recoverInterruptedCommit(paths: SnapshotPaths): Promise<void> {
  try {
    const leftovers = await deadReplacedDirs(paths);
    const newest = leftovers.pop();
    if (newest === undefined) return;
    if (await stat(paths.dir).catch(() => undefined)) leftovers.push(newest);
    else await rename(newest, paths.dir);
    for (const stale of leftovers) await rm(stale, { recursive: true, force: true });
  } catch (cause) {
    throw new WarmvmError('E_SNAPSHOT_RECOVER', `cannot finish the interrupted replacement of the snapshot ${paths.dir}`, {
      hint: 'check the permissions of the warmvm home; "warmvm reset --snapshot" removes the snapshot and what was left of it',
      cause,
    });
  }
}

/** `<name>.replaced-<pid>-<ms>` folders of dead processes, oldest first. */
async function deadReplacedDirs(paths: SnapshotPaths): Promise<string[]> {
  const prefix = `${paths.key}${REPLACED_INFIX}`;
  const found: { dir: string; at: number }[] = [];
  for (const entry of await readdir(paths.root).catch(() => [] as string[])) {
    const match = entry.startsWith(prefix) ? /^(\d+)-(\d+)$/.exec(entry.slice(prefix.length)) : null;
    if (!match || (await isProcessAlive(Number(match[1])))) continue;
    found.push({ dir: join(paths.root, entry), at: Number(match[2]) });
  }
  return found.sort((a, b) => a.at - b.at).map((leftover) => leftover.dir);
}

/** Capture folders whose warmvm died (a kill -9 mid-capture) are garbage. */
async function removeAbandonedCaptures(root: string): Promise<void> {
  for (const entry of await readdir(root).catch(() => [] as string[])) {
    if (!entry.startsWith(CAPTURE_PREFIX)) continue;
    const pid = Number.parseInt(entry.slice(CAPTURE_PREFIX.length), 10);
    if (!(await isProcessAlive(pid))) await rm(join(root, entry), { recursive: true, force: true });
  }
}

/** A version of a snapshot moved out of the way because it could not be resumed (setAside). */
export interface SetAsideVersion {
  /** The config key it was the snapshot of. */
  key: string;
  /** Its folder's name in the store: `<key>.set-aside-<time>`. */
  name: string;
  dir: string;
  /** When it was set aside (ISO 8601, from its name); undefined when its name does not say. */
  setAsideAt: string | undefined;
  /** The first line of its reason.txt; undefined when there is none. */
  reason: string | undefined;
}

/** Every set-aside version in the store, by key, oldest first. */
export async function listSetAsides(snapshotsRoot: string): Promise<SetAsideVersion[]> {
  const found: SetAsideVersion[] = [];
  for (const name of (await readdir(snapshotsRoot).catch(() => [] as string[])).sort()) {
    const at = name.indexOf(SET_ASIDE_INFIX);
    if (name.startsWith('.') || at <= 0) continue;
    const dir = join(snapshotsRoot, name);
    const reason = (await readFile(join(dir, 'reason.txt'), 'utf8').catch(() => '')).split('\n')[0]?.trim();
    found.push({ key: name.slice(0, at), name, dir, setAsideAt: setAsideTime(name.slice(at + SET_ASIDE_INFIX.length)), reason: reason || undefined });
  }
  return found;
}

/** `2026-11-22T00-00-00-000Z` (setAside's name for a time) back to `2026-11-22T00:00:00.000Z`. */
function setAsideTime(stamp: string): string | undefined {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2})-(\d{2})-(\d{2})-(\d{3})Z$/.exec(stamp);
  return match ? `${match[1]}:${match[2]}:${match[3]}.${match[4]}Z` : undefined;
}

/** A folder a dead warmvm left in the store: a capture it never committed, or the old snapshot of a commit it finished. */
export interface StoreLeftover {
  kind: 'capture' | 'replaced';
  /** The config key (of a `replaced` folder); undefined for a capture, whose key its name does not say. */
  key: string | undefined;
  name: string;
  dir: string;
  /** The warmvm that made it, now dead. */
  pid: number;
}

/**
 * The folders of dead processes that are garbage: `.capture-<pid>-<ms>` ones, and
 * `<key>.replaced-<pid>-<ms>` ones whose `<key>/` is in place (without it, the newest is the
 * snapshot that an interrupted commit must put back: recoverInterruptedCommit, not garbage).
 */
export async function listDeadLeftovers(snapshotsRoot: string): Promise<StoreLeftover[]> {
  const entries = (await readdir(snapshotsRoot).catch(() => [] as string[])).sort();
  const found: StoreLeftover[] = [];
  for (const name of entries) {
    const dir = join(snapshotsRoot, name);
    if (name.startsWith(CAPTURE_PREFIX)) {
      const pid = Number.parseInt(name.slice(CAPTURE_PREFIX.length), 10);
      if (!(await isProcessAlive(pid))) found.push({ kind: 'capture', key: undefined, name, dir, pid });
      continue;
    }
    const at = name.indexOf(REPLACED_INFIX);
    const match = at > 0 && !name.startsWith('.') ? /^(\d+)-\d+$/.exec(name.slice(at + REPLACED_INFIX.length)) : null;
    if (!match || !entries.includes(name.slice(0, at)) || (await isProcessAlive(Number(match[1])))) continue;
    found.push({ kind: 'replaced', key: name.slice(0, at), name, dir, pid: Number(match[1]) });
  }
  return found;
}

/** The live process that holds this config's capture lock (a capture in progress), if any. Only reads. */
export async function captureLockHolder(paths: SnapshotPaths): Promise<number | undefined> {
  const pid = Number.parseInt((await readFile(paths.captureLock, 'utf8').catch(() => '')).trim(), 10);
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && (await isProcessAlive(pid)) ? pid : undefined;
}

/**
 * Runs `action` holding this config's capture lock, so that no start captures, commits or sets
 * aside this config meanwhile; or gives the live holder's pid, and runs nothing, when another holds it.
 */
export async function withCaptureLock<T>(paths: SnapshotPaths, action: () => Promise<T>): Promise<{ done: T } | { holder: number }> {
  await mkdir(paths.root, { recursive: true });
  const taken = await tryLock(paths.captureLock);
  if ('holder' in taken) return { holder: taken.holder };
  try {
    return { done: await action() };
  } finally {
    await taken.lock.release();
  }
}

/** Removes one folder of the store by its name (never a path out of it). */
export async function removeStoreDir(snapshotsRoot: string, name: string): Promise<void> {
  if (name === '' || name === '.' || name === '..' || name.includes('/')) throw new Error(`not a folder name in the store: ${name}`);
  await rm(join(snapshotsRoot, name), { recursive: true, force: true });
}

/** The blocks allocated to the files of a store folder (stat.blocks is in 512-byte units whatever the file system's block size). */
export async function bytesOnDisk(dir: string): Promise<number> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  const sizes = await Promise.all(entries.map(async (entry) => ((await lstat(join(dir, entry)).catch(() => undefined))?.blocks ?? 0) * 512));
  return sizes.reduce((sum, bytes) => sum + bytes, 0);
}

/** Temp capture folders present now (for tests asserting none is left). */
export async function listCaptureDirs(root: string): Promise<string[]> {
  return (await readdir(root).catch(() => [] as string[])).filter((entry) => entry.startsWith(CAPTURE_PREFIX));
}
