import { WarmvmError } from '../support/errors.js';
import { getStatus } from './health-probe.js';
import { readInstanceState } from '../instance/state.js';
import { liveLockHolder } from '../instance/lock.js';
import { readSuspended, suspendPaths } from '../instance/suspended.js';
import type { InstancePaths } from '../instance/paths.js';
import { fileExists } from '../support/file-exists.js';
import { isInstanceQemu, readPidFile, removeRuntimeFiles } from '../qemu/process.js';

export interface InstanceStatus {
  name: string;
  state: 'running' | 'stopped';
  pid: number | undefined;
  path: string | undefined;
  /** The config key of the snapshot a running instance maps its RAM from; undefined when it was cold-booted (or is stopped). */
  snapshot: string | undefined;
  /** The running instance's port forwards (guest port → host port on 127.0.0.1); none when stopped. */
  forwards: { guest: number; host: number }[];
  health: { url: string; status: number | undefined; expectStatus: number }[];
  startedAt: string | undefined;
  /** A pidfile whose QEMU is gone (a crash): `stop` cleans it. */
  stale: boolean;
  /** Running, and recorded healthy by the start that launched it (state.json names this QEMU). */
  ready: boolean;
  /** The live warmvm holding the instance's lock (a start, stop or capture under way), if any. */
  busyWith: number | undefined;
  /** When `stop --suspend` kept it, if it is stopped with a state the next start wakes. */
  suspendedAt: string | undefined;
  /** The snapshot whose frozen disk the suspended state's overlay backs onto: it must stay. */
  suspendedOn: string | undefined;
}

/**
 * Running when the pidfile names a live QEMU of this instance; health is asked once, briefly
 * (not at all with `health: false`, for a caller that only needs to know what runs).
 */
export async function instanceStatus(paths: InstancePaths, options: { health?: boolean } = {}): Promise<InstanceStatus> {
  const pid = await readPidFile(paths.pidFile);
  const saved = await readInstanceState(paths.stateFile);
  const running = pid !== undefined && (await isInstanceQemu(pid, paths.qmpSocket));
  const suspended = running ? undefined : await readSuspended(suspendPaths(paths.dir));
  const record = suspended?.kind === 'found' ? suspended.record : undefined;
  const health =
    running && saved && options.health !== false
      ? await Promise.all(
          saved.health.map(async (check) => {
            const answer = await getStatus(check.url, 1_000);
            return { url: check.url, status: answer.status, expectStatus: check.expectStatus };
          }),
        )
      : [];
  return {
    name: paths.name,
    state: running ? 'running' : 'stopped',
    pid: running ? pid : undefined,
    path: running ? saved?.path : undefined,
    snapshot: running ? saved?.snapshot : undefined,
    forwards: running ? (saved?.forwards ?? []) : [],
    health,
    startedAt: running ? saved?.startedAt : undefined,
    stale: !running && (pid !== undefined || saved !== undefined),
    ready: running && saved?.pid === pid,
    busyWith: await liveLockHolder(paths.lockFile),
    suspendedAt: record?.suspendedAt,
    suspendedOn: record?.snapshot,
  };
}

/** What `warmvm stop` finds: the instance's live QEMU, if any, and its runtime files. */
export async function findInstance(paths: InstancePaths): Promise<{ pid: number | undefined; running: boolean; leftovers: string[] }> {
  const pid = await readPidFile(paths.pidFile);
  const running = pid !== undefined && (await isInstanceQemu(pid, paths.qmpSocket));
  const leftovers: string[] = [];
  for (const file of runtimeFiles(paths)) if (await fileExists(file)) leftovers.push(file);
  return { pid, running, leftovers };
}

/** Removes the sockets, pidfile and state of a QEMU that is gone; says which were there. */
export async function cleanInstance(paths: InstancePaths): Promise<{ removed: string[] }> {
  const removed: string[] = [];
  for (const file of runtimeFiles(paths)) if (await fileExists(file)) removed.push(file);
  await removeRuntimeFiles(runtimeFiles(paths));
  return { removed };
}

/** A cold-booted QEMU's memory file goes with it: only a capture keeps that RAM, by moving the file. */
function runtimeFiles(paths: InstancePaths): string[] {
  return [paths.qmpSocket, paths.qgaSocket, paths.pidFile, paths.stateFile, paths.memoryFile];
}

export function notRunning(name: string): WarmvmError {
  return new WarmvmError('E_NOT_RUNNING', `instance "${name}" is not running`, {
    hint: `"warmvm status --name ${name}" shows its state; "warmvm start --name ${name}" starts it`,
  });
}
