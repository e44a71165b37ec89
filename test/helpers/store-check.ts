import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { parseManifest } from '../../adapters/snapshot/manifest.js';
import { readResumeFailures } from '../../adapters/snapshot/resume-failures.js';
import { listCaptureDirs, listSnapshotKeys, removeSnapshot, SNAPSHOT_FILE_MODE, snapshotPaths, type SnapshotPaths } from '../../adapters/snapshot/store.js';
import { isProcessAlive } from '../../adapters/support/process-alive.js';
import { E2E_HOME } from './cli.js';

/** The snapshot an instance last ran from or captured (its config's), by the key its folder records. */
export function snapshotOf(name: string): SnapshotPaths {
  const key = readFileSync(instancePaths(E2E_HOME, name).snapshotKeyFile, 'utf8').trim();
  return snapshotPaths(homePaths(E2E_HOME).snapshots, key);
}

/**
 * Removes every snapshot (and what was set aside of it) that one of these instances captured:
 * the snapshots of a test file's own configs, whatever an earlier run of it left.
 */
export async function removeSnapshotsCapturedBy(names: readonly string[]): Promise<void> {
  const root = homePaths(E2E_HOME).snapshots;
  for (const key of await listSnapshotKeys(root)) {
    const paths = snapshotPaths(root, key);
    const capturedBy = await readFile(paths.manifest, 'utf8').then(
      (text) => (JSON.parse(text) as { capturedBy?: string }).capturedBy,
      () => undefined,
    );
    if (capturedBy !== undefined && names.includes(capturedBy)) await removeSnapshot(paths);
  }
}

/** A config of the demo guest that no other test case shares, so the case has a snapshot of its own. */
export async function caseConfig(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const file = join(E2E_HOME, `case-${name}.json`);
  await mkdir(E2E_HOME, { recursive: true });
  await writeFile(file, JSON.stringify({ ...extra, settings: { E2E_CASE: name } }));
  return file;
}

/** How long the capture's seal may take to record a demo guest's memory checksum, on a loaded machine. */
const SEAL_WAIT_MS = 60_000;

/** The memory checksum the capture's seal (a process of its own) recorded in the manifest, once it has. */
export async function sealedChecksum(paths: SnapshotPaths): Promise<string> {
  const deadline = Date.now() + SEAL_WAIT_MS;
  for (;;) {
    const checksum = await readFile(paths.manifest, 'utf8').then(
      (text) => parseManifest(text).files.memory.checksum,
      () => undefined,
    );
    if (checksum !== undefined) return checksum;
    if (Date.now() > deadline) throw new Error(`the seal recorded no memory checksum in ${paths.manifest} within ${SEAL_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Overwrites 64 KiB of the snapshot's memory file at 4 KiB, keeping its size: damage only a
 * checksum finds (once the seal has recorded it: before, changed stamps alone mark it damaged).
 */
export async function corruptMemory(name: string): Promise<void> {
  const paths = snapshotOf(name);
  await sealedChecksum(paths);
  await chmod(paths.memory, 0o644);
  const handle = await open(paths.memory, 'r+');
  try {
    await handle.write(Buffer.alloc(64 << 10, 0xa5), 0, 64 << 10, 4096);
  } finally {
    await handle.close();
  }
  await chmod(paths.memory, SNAPSHOT_FILE_MODE);
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The snapshot's manifest, memory file and device state as they are (size and sha256 each), to
 * prove a failed attempt, or a clone, left a good snapshot untouched; undefined when there is none.
 * The manifest without its memory checksum: the capture's seal records that after the capture.
 */
export async function snapshotDigest(name: string): Promise<string | undefined> {
  let paths: SnapshotPaths;
  try {
    paths = snapshotOf(name);
  } catch {
    return undefined;
  }
  const parts: string[] = [];
  const manifest = await readFile(paths.manifest, 'utf8').then(parseManifest, () => undefined);
  if (!manifest) return undefined;
  const { checksum: _sealed, ...memory } = manifest.files.memory;
  parts.push(
    `manifest:${createHash('sha256')
      .update(JSON.stringify({ ...manifest, files: { ...manifest.files, memory } }))
      .digest('hex')}`,
  );
  for (const file of [paths.memory, paths.state]) {
    const info = await stat(file).catch(() => undefined);
    if (!info) return undefined;
    parts.push(`${file.slice(paths.dir.length + 1)}:${info.size}:${await sha256File(file)}`);
  }
  return parts.join(' ');
}

/** A snapshot in place is whole by its own manifest (each file's size; the memory file read-only): why not, or undefined. */
export async function snapshotProblem(name: string): Promise<string | undefined> {
  const paths = snapshotOf(name);
  let manifest: ReturnType<typeof parseManifest>;
  try {
    manifest = parseManifest(await readFile(paths.manifest, 'utf8'));
  } catch (error) {
    return `manifest.json: ${(error as Error).message}`;
  }
  for (const file of [manifest.files.memory, manifest.files.state]) {
    const info = await stat(join(paths.dir, file.name)).catch(() => undefined);
    if (info?.size !== file.bytes) return `${file.name} is ${info?.size ?? 'missing'}, its manifest says ${file.bytes} bytes`;
  }
  const mode = (await stat(paths.memory)).mode & 0o777;
  return mode === SNAPSHOT_FILE_MODE ? undefined : `${paths.memory} has mode ${mode.toString(8)}, not ${SNAPSHOT_FILE_MODE.toString(8)}`;
}

/**
 * What a finished command must not leave in the snapshot store: capture folders, the old
 * snapshot of a replacement, and temp files (`*.tmp-<pid>`) of processes that are gone, at any depth.
 */
export async function storeLeftovers(): Promise<string[]> {
  const root = homePaths(E2E_HOME).snapshots;
  const found = (await listCaptureDirs(root)).map((entry) => join(root, entry));
  return [...new Set([...found, ...(await leftoversUnder(root))])];
}

/** Temp files (`*.tmp-<pid>`) of processes that are gone, and replaced snapshots, under `dir` at any depth. */
export async function leftoversUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    // A temp file of a live process is being written (a capture's seal, detached, writes the manifest after the start ended).
    const writer = /\.tmp-(\d+)$/.exec(entry.name)?.[1];
    if ((writer !== undefined && !(await isProcessAlive(Number(writer)))) || entry.name.includes('.replaced-')) found.push(path);
    if (entry.isDirectory()) found.push(...(await leftoversUnder(path)));
  }
  return found;
}

/** The instance's snapshot, or undefined when the instance has recorded none (it never captured nor resumed). */
function recordedSnapshot(name: string): SnapshotPaths | undefined {
  try {
    return snapshotOf(name);
  } catch {
    return undefined;
  }
}

/**
 * Removes the snapshot of the instance's config (by the key its folder records) and what was set
 * aside of it, for a test that must start from no snapshot; returns what it removed.
 */
export async function removeSnapshotOf(name: string): Promise<string[]> {
  const paths = recordedSnapshot(name);
  return paths ? await removeSnapshot(paths) : [];
}

/** A config of the same case as caseConfig(name), so the same config key (and snapshot), with other bounds or health checks. */
export async function caseVariantConfig(name: string, variant: string, extra: Record<string, unknown>): Promise<string> {
  const file = join(E2E_HOME, `case-${name}-${variant}.json`);
  await writeFile(file, JSON.stringify({ ...extra, settings: { E2E_CASE: name } }));
  return file;
}

/**
 * Damages the instance's snapshot file in place: `truncate` cuts it to a quarter (its size is then
 * not its manifest's), `overwrite` writes 64 KiB of other bytes at 4 KiB, keeping its size and mode.
 */
export async function damageSnapshotFile(name: string, file: 'memory' | 'state', how: 'truncate' | 'overwrite'): Promise<void> {
  const paths = snapshotOf(name);
  const path = file === 'memory' ? paths.memory : paths.state;
  const { mode, size } = await stat(path);
  await chmod(path, 0o644);
  const handle = await open(path, 'r+');
  try {
    if (how === 'truncate') {
      await handle.truncate(Math.floor(size / 4));
    } else {
      const length = Math.min(64 << 10, size - 4096);
      const old = Buffer.alloc(length);
      await handle.read(old, 0, length, 4096);
      await handle.write(
        old.map((byte) => byte ^ 0x5a),
        0,
        length,
        4096,
      );
    }
  } finally {
    await handle.close();
  }
  await chmod(path, mode & 0o777);
}

/** How many resumes in a row of the instance's snapshot failed after `cont` (its `resume-failures` file, as warmvm reads it): 0 when none is recorded. */
export async function resumeFailuresOf(name: string): Promise<number> {
  const paths = recordedSnapshot(name);
  return paths ? await readResumeFailures(paths) : 0;
}

/** The newest `<key>.set-aside-<time>/` folder of the instance's snapshot, with its reason.txt; undefined when none is there. */
export async function newestSetAside(name: string): Promise<{ dir: string; reason: string } | undefined> {
  const paths = recordedSnapshot(name);
  if (!paths) return undefined;
  const prefix = `${paths.key}.set-aside-`;
  const newest = (await readdir(paths.root).catch(() => [] as string[]))
    .filter((entry) => entry.startsWith(prefix))
    .sort()
    .at(-1);
  if (newest === undefined) return undefined;
  const dir = join(paths.root, newest);
  return { dir, reason: (await readFile(join(dir, 'reason.txt'), 'utf8').catch(() => '(no reason.txt)')).trim() };
}

/** Capture locks (`snapshots/.lock-<key>`) present now: a finished command holds none. */
export async function captureLocks(): Promise<string[]> {
  const root = homePaths(E2E_HOME).snapshots;
  return (await readdir(root).catch(() => [] as string[])).filter((entry) => entry.startsWith('.lock-')).map((entry) => join(root, entry));
}
