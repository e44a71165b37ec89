import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostFacts } from '../snapshot/manifest.js';
import { syncDir, syncFile, writeFileDurably } from '../support/durable.js';
import { fileExists } from '../support/file-exists.js';
import { setAsideFolder } from '../support/set-aside.js';
import { isProcessAlive } from '../support/process-alive.js';

/**
 * An instance's suspended state: what `stop --suspend` kept of a running instance (its RAM and
 * devices in one migration stream, its disk overlay, its secrets), in `suspended/` of the
 * instance folder, until the next start wakes it. A state that cannot be woken is set aside
 * beside it (`suspended.aside-<time>/`, with reason.txt), never deleted: `reset` drops them all.
 */

export const SUSPEND_FORMAT = 1;
const DIR = 'suspended';
const TEMP_INFIX = '.tmp-';
const ASIDE_INFIX = '.aside-';
/** Set-aside states kept per instance: enough to look at what went wrong, not a store. */
const ASIDE_KEEP = 2;

/** suspend.json: what the state must match to be woken. No secret: the secrets travel as their own file. */
export interface SuspendRecord extends HostFacts {
  format: number;
  suspendedAt: string;
  /** The path of the start that made the VM that was suspended (`cold`, `cold+capture+resume`, …). */
  path: string;
  /** The snapshot (config key) the overlay backs onto: the state needs its frozen disk. */
  snapshot: string | undefined;
  /** Bytes of the migration stream (a sparse file: zero pages are holes). */
  stateBytes: number;
  /** Which files the state holds beside the stream. */
  disk: boolean;
  secrets: boolean;
}

export interface SuspendPaths {
  dir: string;
  record: string;
  /** The migration stream: devices and RAM (mapped-ram). */
  state: string;
  disk: string;
  secrets: string;
}

export type SuspendedFound = { kind: 'none' } | { kind: 'found'; record: SuspendRecord } | { kind: 'unreadable'; reason: string };

export function suspendPaths(instanceDir: string, name = DIR): SuspendPaths {
  const dir = join(instanceDir, name);
  return { dir, record: join(dir, 'suspend.json'), state: join(dir, 'state.raw'), disk: join(dir, 'disk.qcow2'), secrets: join(dir, 'secrets.env') };
}

/** The instance's suspended state: none, one whose record and files are all there, or why it cannot be read. */
export async function readSuspended(paths: SuspendPaths): Promise<SuspendedFound> {
  if (!(await fileExists(paths.dir))) return { kind: 'none' };
  let record: SuspendRecord;
  try {
    record = JSON.parse(await readFile(paths.record, 'utf8')) as SuspendRecord;
  } catch (error) {
    return { kind: 'unreadable', reason: `its suspend.json cannot be read (${(error as Error).message})` };
  }
  if (record.format !== SUSPEND_FORMAT) return { kind: 'unreadable', reason: `it is of format ${String(record.format)}; this warmvm wakes format ${SUSPEND_FORMAT}` };
  const needed = [paths.state, ...(record.disk ? [paths.disk] : []), ...(record.secrets ? [paths.secrets] : [])];
  for (const file of needed) if (!(await fileExists(file))) return { kind: 'unreadable', reason: `its ${file.slice(file.lastIndexOf('/') + 1)} is missing` };
  const size = (await stat(paths.state)).size;
  if (size !== record.stateBytes) return { kind: 'unreadable', reason: `its state.raw has ${size} bytes, ${record.stateBytes} were written` };
  return { kind: 'found', record };
}

/**
 * A fresh folder for a suspend to write into, beside the one it publishes. A folder a killed
 * suspend left is set aside first, not deleted: it may hold the overlay the instance had.
 */
export async function beginSuspend(instanceDir: string): Promise<SuspendPaths> {
  for (const entry of await readdir(instanceDir)) {
    if (!entry.startsWith(`${DIR}${TEMP_INFIX}`)) continue;
    const pid = Number(entry.slice(DIR.length + TEMP_INFIX.length));
    if (!(await isProcessAlive(pid))) await setAsideSuspended(suspendPaths(instanceDir, entry), 'a suspend was cut short before it finished');
  }
  const temp = suspendPaths(instanceDir, `${DIR}${TEMP_INFIX}${process.pid}`);
  await rm(temp.dir, { recursive: true, force: true });
  await mkdir(temp.dir, { mode: 0o700 });
  return temp;
}

/** The files flushed, the record written, then one rename publishes the state. */
export async function publishSuspend(temp: SuspendPaths, record: SuspendRecord): Promise<SuspendPaths> {
  for (const file of [temp.state, ...(record.disk ? [temp.disk] : []), ...(record.secrets ? [temp.secrets] : [])]) await syncFile(file);
  await writeFileDurably(temp.record, `${JSON.stringify(record, null, 2)}\n`);
  const instanceDir = join(temp.dir, '..');
  const published = suspendPaths(instanceDir);
  await rename(temp.dir, published.dir);
  await syncDir(instanceDir);
  return published;
}

/** Moved out of the way with its reason; the oldest set-asides beyond a few go. Returns where it went. */
export async function setAsideSuspended(paths: SuspendPaths, reason: string): Promise<string | undefined> {
  if (!(await fileExists(paths.dir))) return undefined;
  return await setAsideFolder(paths.dir, join(paths.dir, '..', `${DIR}${ASIDE_INFIX}`), reason, ASIDE_KEEP);
}

/** Moves `from` to `to` when it is there; says whether it was. */
export async function moveIfThere(from: string, to: string): Promise<boolean> {
  try {
    await rename(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
