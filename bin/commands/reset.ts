import { rm } from 'node:fs/promises';
import { WarmvmError } from '../../adapters/support/errors.js';
import { fileExists } from '../../adapters/support/file-exists.js';
import { instanceStatus } from '../../adapters/vm/control.js';
import { acquireInstanceLock } from '../../adapters/instance/lock.js';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { removeSnapshot, snapshotPaths } from '../../adapters/snapshot/store.js';
import type { Output } from '../output.js';

/** Forgets an instance's state (logs, trace, secrets, overlay) and, with --snapshot, its snapshot. */
export async function resetCommand(options: { name: string; home: string; snapshot: boolean; output: Output }): Promise<number> {
  const paths = instancePaths(options.home, options.name);
  const removed: string[] = [];
  if (await fileExists(paths.dir)) {
    const lock = await acquireInstanceLock(paths.lockFile, paths.name);
    try {
      const status = await instanceStatus(paths);
      if (status.state === 'running') {
        throw new WarmvmError('E_RUNNING', `instance "${options.name}" is running (QEMU pid ${status.pid})`, { hint: `stop it first: warmvm stop --name ${options.name}` });
      }
      await rm(paths.dir, { recursive: true, force: true });
      removed.push(paths.dir);
    } finally {
      await lock.release();
    }
  }
  if (options.snapshot) removed.push(...(await removeSnapshot(snapshotPaths(homePaths(options.home).snapshots, options.name))));
  options.output.result(
    { name: options.name, outcome: 'reset', removed },
    removed.length === 0 ? `instance "${options.name}": nothing to remove` : [`instance "${options.name}" reset; removed:`, ...removed.map((path) => `  ${path}`)].join('\n'),
  );
  return 0;
}
