import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { WarmvmError } from '../../adapters/support/errors.js';
import { fileExists } from '../../adapters/support/file-exists.js';
import { instanceStatus } from '../../adapters/vm/control.js';
import { listInstances, readSnapshotKey, runningFrom } from '../../adapters/vm/instances.js';
import { acquireInstanceLock } from '../../adapters/instance/lock.js';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { removeSnapshot, snapshotPaths } from '../../adapters/snapshot/store.js';
import type { Output } from '../output.js';

/**
 * Forgets an instance's state (logs, trace, secrets, overlay) and, with --snapshot, the snapshot
 * it last ran from or captured (its config's, shared with every instance of that config).
 */
export async function resetCommand(options: { name: string; home: string; snapshot: boolean; output: Output }): Promise<number> {
  const paths = instancePaths(options.home, options.name);
  const removed: string[] = [];
  let key: string | undefined;
  // Not a valid instance name (it starts with a dot): no command takes it for an instance.
  const trash = join(homePaths(options.home).instances, `.removing-${options.name}-${process.pid}`);
  if (await fileExists(paths.dir)) {
    const lock = await acquireInstanceLock(paths.lockFile, paths.name);
    try {
      const status = await instanceStatus(paths, { health: false });
      if (status.state === 'running') {
        throw new WarmvmError('E_RUNNING', `instance "${options.name}" is running (QEMU pid ${status.pid})`, { hint: `stop it first: warmvm stop --name ${options.name}` });
      }
      // Read before the folder that holds it goes.
      key = await readSnapshotKey(paths);
      // Renamed away under the lock, then deleted: a start that comes meanwhile makes a fresh
      // folder (and lock) of its own instead of writing into one being deleted.
      await rename(paths.dir, trash);
      removed.push(paths.dir);
    } finally {
      await lock.release();
    }
    await rm(trash, { recursive: true, force: true });
  }
  const usedBy = options.snapshot && key !== undefined ? runningFrom(await listInstances(options.home, { health: false }), key) : [];
  if (options.snapshot) removed.push(...(await removeSnapshots(options.home, options.name, key)));
  const lines = removed.length === 0 ? [`instance "${options.name}": nothing to remove`] : [`instance "${options.name}" reset; removed:`, ...removed.map((path) => `  ${path}`)];
  if (options.snapshot && key === undefined) {
    lines.push(`instance "${options.name}" names no snapshot it ran from or captured (none, or it was reset before): "warmvm list" shows the snapshots`);
  }
  if (usedBy.length > 0) {
    lines.push(
      `the snapshot ${key} was in use by ${usedBy.join(', ')}: they run on from its memory, which stays theirs until they stop; the next start of its config captures anew`,
    );
  }
  options.output.result({ name: options.name, outcome: 'reset', removed, snapshot: options.snapshot ? (key ?? null) : null, snapshotUsedBy: usedBy }, lines.join('\n'));
  return 0;
}

/** The snapshot of `key`, and what an older warmvm kept under the instance's name, each with its set-aside copies. */
async function removeSnapshots(home: string, name: string, key: string | undefined): Promise<string[]> {
  const root = homePaths(home).snapshots;
  const removed: string[] = [];
  for (const folder of new Set([...(key === undefined ? [] : [key]), name])) removed.push(...(await removeSnapshot(snapshotPaths(root, folder))));
  return removed;
}
