import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../support/durable.js';
import { WarmvmError } from '../support/errors.js';
import { fileChecksum } from './checksum.js';
import type { RecordedFile, SnapshotManifest } from './manifest.js';
import type { SnapshotPaths } from './store.js';

/** What a file's inode said when it was last checksummed: any write, truncation or replacement changes one of these. */
interface FileStamp {
  bytes: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

type Stamps = Record<string, FileStamp>;

/** How each file of a snapshot was found whole before a launch. */
export interface Verification {
  /** Files checksummed in full because their stamp changed (or none was recorded). */
  checked: string[];
  /** Files whose size and times are those recorded when they were last checksummed. */
  unchanged: string[];
}

export function snapshotFiles(manifest: SnapshotManifest): RecordedFile[] {
  return [manifest.files.memory, manifest.files.state, ...(manifest.files.disk ? [manifest.files.disk] : [])];
}

/**
 * Before a launch maps them: every file the right size, and any whose size, mtime or ctime
 * changed since it was last checksummed is checksummed in full first. Reading a 4 GB memory
 * file on every resume is what lazy restore exists to avoid. A memory file whose checksum is not
 * recorded yet (seal.ts) is trusted only as the capture stamped it: changed, it is damaged.
 */
export async function verifyBeforeLaunch(
  paths: SnapshotPaths,
  manifest: SnapshotManifest,
  options: { signal?: AbortSignal; onFullCheck?: (file: string) => void; shownDir?: string; full?: boolean } = {},
): Promise<Verification> {
  const shown = options.shownDir ?? paths.dir;
  const stamps: Stamps = options.full ? {} : await readStamps(paths);
  const result: Verification = { checked: [], unchanged: [] };
  for (const file of snapshotFiles(manifest)) {
    const path = join(paths.dir, file.name);
    const stamp = await stampOf(path, file, shown);
    if (sameStamp(stamps[file.name], stamp)) {
      result.unchanged.push(file.name);
      continue;
    }
    if (file.checksum === undefined) throw changedBeforeSealed(file.name, shown);
    options.onFullCheck?.(file.name);
    await checkFile(path, file, shown, options.signal);
    stamps[file.name] = stamp;
    result.checked.push(file.name);
  }
  if (result.checked.length > 0) await writeStamps(paths, stamps);
  return result;
}

/** Every file checksummed in full, whatever its stamp says (`warmvm snapshot verify`). */
export async function verifyInFull(paths: SnapshotPaths, manifest: SnapshotManifest, signal?: AbortSignal): Promise<void> {
  await verifyBeforeLaunch(paths, manifest, { signal, full: true });
}

/** Whether the file is as its stamp in verified.json says: its size, times and inode unchanged since it was stamped. */
export async function unchangedSinceStamped(paths: SnapshotPaths, file: RecordedFile, shownDir = paths.dir): Promise<boolean> {
  return sameStamp((await readStamps(paths))[file.name], await stampOf(join(paths.dir, file.name), file, shownDir));
}

/** A memory file that changed between its capture and the recording of its checksum: nothing can tell whether it is whole. */
export function changedBeforeSealed(name: string, shown: string): WarmvmError {
  return new WarmvmError('E_SNAPSHOT_CORRUPT', `the snapshot's ${name} in ${shown} changed (its size, times or inode) before its checksum was recorded`, {
    hint: 'it is set aside; the cold boot captures a new one',
  });
}

/** At capture, once every file is written, flushed and frozen: what they are now is what was (or will be) checksummed. */
export async function recordVerified(paths: { dir: string; verified: string }, manifest: SnapshotManifest): Promise<void> {
  const stamps: Stamps = {};
  for (const file of snapshotFiles(manifest)) stamps[file.name] = toStamp(await stat(join(paths.dir, file.name)));
  await writeFileDurably(paths.verified, `${JSON.stringify(stamps, null, 2)}\n`);
}

/** `shown`: the snapshot's folder as a person knows it (a resume reads it through a pin). */
async function stampOf(path: string, file: RecordedFile, shown: string): Promise<FileStamp> {
  const found = await stat(path).catch(() => undefined);
  if (!found) {
    throw new WarmvmError('E_SNAPSHOT_MISSING', `the snapshot's ${file.name} is missing from ${shown}`, { hint: 'it is set aside; the cold boot captures a new one' });
  }
  if (found.size !== file.bytes) {
    throw new WarmvmError('E_SNAPSHOT_CORRUPT', `the snapshot's ${file.name} is ${found.size} bytes, its manifest says ${file.bytes}`, {
      hint: 'it is set aside; the cold boot captures a new one',
    });
  }
  return toStamp(found);
}

async function checkFile(path: string, file: RecordedFile, shown: string, signal: AbortSignal | undefined): Promise<void> {
  expectChecksum(file, (await fileChecksum(path, { signal })).checksum, shown);
}

/** A file of the snapshot in `shown` found with `checksum`: anything but the manifest's is refused (and so is a manifest that records none). */
export function expectChecksum(file: RecordedFile, checksum: string, shown: string): void {
  if (checksum !== file.checksum) {
    throw new WarmvmError(
      'E_SNAPSHOT_CORRUPT',
      `the snapshot's ${file.name} in ${shown} does not match its checksum (recorded ${file.checksum === undefined ? 'none' : `${file.checksum.slice(0, 22)}…`}, found ${checksum.slice(0, 22)}…)`,
      {
        hint: 'it is set aside; the cold boot captures a new one',
      },
    );
  }
}

function toStamp(found: { size: number; mtimeMs: number; ctimeMs: number; ino: number }): FileStamp {
  return { bytes: found.size, mtimeMs: found.mtimeMs, ctimeMs: found.ctimeMs, ino: found.ino };
}

function sameStamp(recorded: FileStamp | undefined, now: FileStamp): boolean {
  return recorded !== undefined && recorded.bytes === now.bytes && recorded.mtimeMs === now.mtimeMs && recorded.ctimeMs === now.ctimeMs && recorded.ino === now.ino;
}

async function readStamps(paths: SnapshotPaths): Promise<Stamps> {
  try {
    const value = JSON.parse(await readFile(paths.verified, 'utf8')) as unknown;
    return value && typeof value === 'object' ? (value as Stamps) : {};
  } catch {
    return {};
  }
}

async function writeStamps(paths: SnapshotPaths, stamps: Stamps): Promise<void> {
  // Best effort: a store we cannot write only means the next launch checksums again.
  await writeFileDurably(paths.verified, `${JSON.stringify(stamps, null, 2)}\n`).catch(() => undefined);
}
