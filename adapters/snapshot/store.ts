import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WarmvmError } from '../support/errors.js';
import { isProcessAlive } from '../support/process-alive.js';
import { parseManifest, type SnapshotManifest } from './manifest.js';

/** One instance's snapshot: `snapshots/<name>/` holding the manifest, state and frozen disk. */
export interface SnapshotPaths {
  root: string;
  dir: string;
  manifest: string;
  stateRaw: string;
  stateZst: string;
  disk: string;
}

export const STATE_RAW = 'state.raw';
export const STATE_ZST = 'state.zst';
export const FROZEN_DISK = 'disk.qcow2';
const CAPTURE_PREFIX = '.capture-';
/** `<name>.replaced-<pid>-<ms>`: the old snapshot while a commit puts the new one in its place. */
const REPLACED_INFIX = '.replaced-';
const SET_ASIDE_KEEP = 2;

export function snapshotPaths(snapshotsRoot: string, name: string): SnapshotPaths {
  const dir = join(snapshotsRoot, name);
  return { root: snapshotsRoot, dir, manifest: join(dir, 'manifest.json'), stateRaw: join(dir, STATE_RAW), stateZst: join(dir, STATE_ZST), disk: join(dir, FROZEN_DISK) };
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
  if (hadOld) await rename(paths.dir, old);
  try {
    await rename(captureDir, paths.dir);
  } catch (cause) {
    if (hadOld) await rename(old, paths.dir).catch(() => undefined);
    throw new WarmvmError('E_SNAPSHOT_COMMIT', `cannot put the new snapshot in place at ${paths.dir}`, { hint: 'check the disk space and permissions of the warmvm home', cause });
  }
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/**
 * Moves a snapshot that cannot be resumed out of the way, with its reason beside it, so the
 * next capture can take its place and a person can still look at it. Only the newest few are kept.
 */
export async function setAside(paths: SnapshotPaths, reason: string): Promise<string | undefined> {
  await recoverInterruptedCommit(paths);
  if (!(await stat(paths.dir).catch(() => undefined))) return undefined;
  const name = paths.dir.slice(paths.root.length + 1);
  const target = join(paths.root, `${name}.set-aside-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  // The reason first: a kill between the two steps then leaves no set-aside folder without one.
  await writeFile(join(paths.dir, 'reason.txt'), `${reason}\n`);
  await rename(paths.dir, target);
  const asides = (await readdir(paths.root)).filter((entry) => entry.startsWith(`${name}.set-aside-`)).sort();
  for (const stale of asides.slice(0, Math.max(0, asides.length - SET_ASIDE_KEEP))) await rm(join(paths.root, stale), { recursive: true, force: true });
  return target;
}

/** Removes the snapshot and anything set aside for it. */
export async function removeSnapshot(paths: SnapshotPaths): Promise<string[]> {
  const name = paths.dir.slice(paths.root.length + 1);
  const entries = await readdir(paths.root).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const entry of entries) {
    if (entry === name || entry.startsWith(`${name}.set-aside-`) || entry.startsWith(`${name}${REPLACED_INFIX}`)) {
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
  const prefix = `${paths.dir.slice(paths.root.length + 1)}${REPLACED_INFIX}`;
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
