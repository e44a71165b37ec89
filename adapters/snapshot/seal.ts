import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tryLock } from '../instance/lock.js';
import { writeFileDurably } from '../support/durable.js';
import { WarmvmError } from '../support/errors.js';
import { projectRoot } from '../support/project-root.js';
import { sleep } from '../support/sleep.js';
import { fileChecksum } from './checksum.js';
import { parseManifest, type SnapshotManifest, withMemoryChecksum } from './manifest.js';
import { pinSnapshot, type SnapshotPaths } from './store.js';
import { changedBeforeSealed, unchangedSinceStamped } from './verify.js';

/** What sealing a snapshot found: its memory checksum recorded now or before, or why not. */
export type Sealed =
  | { status: 'sealed'; checksum: string; ms: number }
  | { status: 'recorded already'; checksum: string }
  | { status: 'changed'; reason: string }
  | { status: 'missing' }
  | { status: 'busy'; holder: number };

/** How long a caller that must have the checksum (verify, export) waits for another process sealing it. */
const SEAL_WAIT_MS = 120_000;
const SEAL_POLL_MS = 200;

/**
 * Records the checksum of a snapshot's memory file in its manifest, after the capture published
 * it without one: reading back 3 GB that a guest just wrote costs 1–2.5 s here, and a capture need
 * only wait for the flush. Done through the pinned folder, so that a snapshot set aside or replaced
 * meanwhile is sealed as itself or left alone; and only when the file is as the capture stamped it,
 * before and after the read. One process at a time (`.seal-<key>` beside the snapshots); with
 * `wait`, a caller that needs the checksum waits for the one sealing it.
 */
export async function sealMemory(paths: SnapshotPaths, options: { signal?: AbortSignal; wait?: boolean } = {}): Promise<Sealed> {
  let pinned: Awaited<ReturnType<typeof pinSnapshot>>;
  try {
    pinned = await pinSnapshot(paths);
  } catch {
    return { status: 'missing' };
  }
  try {
    const taken = await takeSealLock(paths, options);
    if ('holder' in taken) return { status: 'busy', holder: taken.holder };
    try {
      const manifest = parseManifest(await readFile(pinned.paths.manifest, 'utf8'));
      const memory = manifest.files.memory;
      if (memory.checksum !== undefined) return { status: 'recorded already', checksum: memory.checksum };
      const started = Date.now();
      const unchanged = (): Promise<boolean> => unchangedSinceStamped(pinned.paths, memory, paths.dir).catch(() => false);
      const changed = { status: 'changed', reason: changedBeforeSealed(memory.name, paths.dir).message } as const;
      if (!(await unchanged())) return changed;
      const { checksum } = await fileChecksum(pinned.paths.memory, { signal: options.signal });
      if (!(await unchanged())) return changed;
      await writeFileDurably(pinned.paths.manifest, `${JSON.stringify(withMemoryChecksum(manifest, checksum), null, 2)}\n`);
      return { status: 'sealed', checksum, ms: Date.now() - started };
    } finally {
      await taken.lock.release();
    }
  } finally {
    await pinned.close();
  }
}

/** The manifest with its memory checksum recorded (sealed now, or by whoever sealed it), for a caller that must have it. */
export async function sealedManifest(paths: SnapshotPaths, manifest: SnapshotManifest, signal?: AbortSignal): Promise<{ manifest: SnapshotManifest; memoryChecksum: string }> {
  if (manifest.files.memory.checksum !== undefined) return { manifest, memoryChecksum: manifest.files.memory.checksum };
  const sealed = await sealMemory(paths, { signal, wait: true });
  if (sealed.status === 'sealed' || sealed.status === 'recorded already') {
    return { manifest: withMemoryChecksum(manifest, sealed.checksum), memoryChecksum: sealed.checksum };
  }
  if (sealed.status === 'changed') throw changedBeforeSealed(manifest.files.memory.name, paths.dir);
  if (sealed.status === 'missing') throw new WarmvmError('E_SNAPSHOT_MISSING', `the snapshot ${paths.dir} is gone`, { hint: '"warmvm list" shows the snapshots' });
  throw new WarmvmError('E_SNAPSHOT_BUSY', `another warmvm (pid ${sealed.holder}) has been recording the checksum of ${paths.dir} for over ${SEAL_WAIT_MS / 1000} s`, {
    hint: `try again once pid ${sealed.holder} has finished`,
  });
}

/**
 * `warmvm snapshot seal KEY` in a process of its own, detached, so that the command that captured
 * returns once the snapshot is published, and a Ctrl-C of it does not cut the seal short (a seal
 * cut short only leaves the checksum to the next verify or export). Its output goes to `logFile`.
 * Never throws: the snapshot is published already, and a seal that could not start is only late.
 */
export function sealInBackground(home: string, key: string, logFile: string): { pid: number } | { error: string } {
  let log: number | undefined;
  try {
    log = openSync(logFile, 'a', 0o600);
    const child = spawn(process.execPath, [join(projectRoot(), 'dist', 'bin', 'warmvm.js'), 'snapshot', 'seal', key], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, WARMVM_HOME: home },
    });
    child.on('error', () => undefined);
    child.unref();
    return child.pid === undefined ? { error: 'the process did not start' } : { pid: child.pid };
  } catch (error) {
    return { error: (error as Error).message };
  } finally {
    if (log !== undefined) closeSync(log);
  }
}

async function takeSealLock(paths: SnapshotPaths, options: { signal?: AbortSignal; wait?: boolean }): ReturnType<typeof tryLock> {
  const lockFile = join(paths.root, `.seal-${paths.key}`);
  const deadline = Date.now() + SEAL_WAIT_MS;
  for (;;) {
    const taken = await tryLock(lockFile);
    if ('lock' in taken || !options.wait || Date.now() > deadline) return taken;
    await sleep(SEAL_POLL_MS, options.signal);
  }
}
