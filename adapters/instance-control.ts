import { WarmvmError } from './errors.js';
import { getStatus } from './health-probe.js';
import { acquireInstanceLock } from './instance-lock.js';
import { readInstanceState, removeInstanceState, type InstanceState } from './instance-state.js';
import type { InstancePaths } from './paths.js';
import { fileExists } from './file-exists.js';
import { isInstanceQemu, readPidFile, removeRuntimeFiles, stopProcess } from './qemu-process.js';

export interface InstanceStatus {
  name: string;
  state: 'running' | 'stopped';
  pid: number | undefined;
  path: string | undefined;
  health: { url: string; status: number | undefined }[];
  startedAt: string | undefined;
  /** A pidfile whose QEMU is gone (a crash): `stop` cleans it. */
  stale: boolean;
}

/** Running when the pidfile names a live QEMU of this instance; health is asked once, briefly. */
export async function instanceStatus(paths: InstancePaths): Promise<InstanceStatus> {
  const pid = await readPidFile(paths.pidFile);
  const saved = await readInstanceState(paths.stateFile);
  const running = pid !== undefined && (await isInstanceQemu(pid, paths.qmpSocket));
  const health = running && saved ? await Promise.all(saved.health.map(async (check) => {
    const answer = await getStatus(check.url, 1_000);
    return { url: check.url, status: answer.status };
  })) : [];
  return {
    name: paths.name,
    state: running ? 'running' : 'stopped',
    pid: running ? pid : undefined,
    path: running ? saved?.path : undefined,
    health,
    startedAt: running ? saved?.startedAt : undefined,
    stale: !running && (pid !== undefined || saved !== undefined),
  };
}

export interface StopReport {
  name: string;
  /** What happened to QEMU. */
  result: 'terminated' | 'killed' | 'stale-cleaned';
  pid: number | undefined;
  removed: string[];
}

/** Stops the instance's QEMU and removes its runtime files; a stale pidfile is recognised and cleaned. */
export async function stopInstance(paths: InstancePaths, graceMs = 5_000): Promise<StopReport> {
  if (!(await fileExists(paths.dir))) throw notRunning(paths.name);
  const lock = await acquireInstanceLock(paths.lockFile, paths.name);
  try {
    const pid = await readPidFile(paths.pidFile);
    const saved: InstanceState | undefined = await readInstanceState(paths.stateFile);
    const leftovers = [paths.qmpSocket, paths.qgaSocket, paths.pidFile, paths.stateFile];
    const present: string[] = [];
    for (const file of leftovers) if (await fileExists(file)) present.push(file);
    if (pid !== undefined && (await isInstanceQemu(pid, paths.qmpSocket))) {
      const how = await stopProcess(pid, { graceMs });
      await removeRuntimeFiles(leftovers);
      await removeInstanceState(paths.stateFile);
      return { name: paths.name, result: how === 'killed' ? 'killed' : 'terminated', pid, removed: present };
    }
    if (present.length === 0 && saved === undefined) {
      throw notRunning(paths.name);
    }
    await removeRuntimeFiles(leftovers);
    return { name: paths.name, result: 'stale-cleaned', pid, removed: present };
  } finally {
    await lock.release();
  }
}

function notRunning(name: string): WarmvmError {
  return new WarmvmError('E_NOT_RUNNING', `instance "${name}" is not running`, {
    hint: `"warmvm status --name ${name}" shows its state; "warmvm start --name ${name}" starts it`,
  });
}
