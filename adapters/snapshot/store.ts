import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from '../support/durable.js';
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
  const name = paths.key;
  const target = join(paths.root, `${name}${SET_ASIDE_INFIX}${new Date().toISOString().replace(/[:.]/g, '-')}`);
  // The reason first: a kill between the two steps then leaves no set-aside folder without one.
  await writeFile(join(paths.dir, 'reason.txt'), `${reason}\n`);
  await rename(paths.dir, target);
  const asides = (await readdir(paths.root)).filter((entry) => entry.startsWith(`${name}${SET_ASIDE_INFIX}`)).sort();
  for (const stale of asides.slice(0, Math.max(0, asides.length - SET_ASIDE_KEEP))) await rm(join(paths.root, stale), { recursive: true, force: true });
  return target;
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

/** Temp capture folders present now (for tests asserting none is left). */
export async function listCaptureDirs(root: string): Promise<string[]> {
  return (await readdir(root).catch(() => [] as string[])).filter((entry) => entry.startsWith(CAPTURE_PREFIX));
}
