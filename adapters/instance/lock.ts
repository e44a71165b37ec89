import { open, readFile, rm } from 'node:fs/promises';
import { WarmvmError } from '../support/errors.js';
import { isProcessAlive } from '../support/process-alive.js';

export interface InstanceLock {
  readonly path: string;
  release(): Promise<void>;
}

/**
 * Takes a lock file (O_EXCL, holding our pid), or says which live process holds it. A lock
 * left by a process that died is taken over.
 */
export async function tryLock(lockFile: string): Promise<{ lock: InstanceLock } | { holder: number }> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const handle = await open(lockFile, 'wx', 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      let released = false;
      return {
        lock: {
          path: lockFile,
          async release() {
            if (released) return;
            released = true;
            const holder = await readLockHolder(lockFile);
            if (holder === process.pid) await rm(lockFile, { force: true });
          },
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new WarmvmError('E_LOCK', `cannot create the lock file ${lockFile}`, {
          hint: 'check that the warmvm home is writable',
          cause: error,
        });
      }
    }
    const holder = await readLockHolder(lockFile);
    if (holder !== undefined && holder !== process.pid && (await isProcessAlive(holder))) return { holder };
    // The holder is gone: the lock is stale.
    await rm(lockFile, { force: true });
  }
  throw new WarmvmError('E_LOCKED', `the lock ${lockFile} keeps changing hands`, { hint: 'another warmvm is racing for it; try again' });
}

/** The instance's lock; one held by a live process is refused with the way out. */
export async function acquireInstanceLock(lockFile: string, instanceName: string): Promise<InstanceLock> {
  const taken = await tryLock(lockFile);
  if ('lock' in taken) return taken.lock;
  throw new WarmvmError('E_LOCKED', `instance "${instanceName}" is busy: another warmvm (pid ${taken.holder}) is starting or stopping it`, {
    hint: `wait for it to finish, or use another instance with --name; if pid ${taken.holder} is not warmvm, remove ${lockFile}`,
  });
}

async function readLockHolder(lockFile: string): Promise<number | undefined> {
  const text = await readFile(lockFile, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
