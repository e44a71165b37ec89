import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WarmvmError } from '../support/errors.js';
import { systemErrorFix } from '../support/system-error.js';
import { isProcessAlive } from '../support/process-alive.js';

export interface InstanceLock {
  readonly path: string;
  release(): Promise<void>;
}

/**
 * Takes a lock file holding our pid, or says which live process holds it. A lock left by a process
 * that died is taken over. The pid is written to a file of our own first and that file linked to
 * the lock's name (link(2) fails when the name exists): a lock file is never seen empty, so a
 * taker is never mistaken for a holder that died.
 */
export async function tryLock(lockFile: string): Promise<{ lock: InstanceLock } | { holder: number }> {
  const mine = `${lockFile}.${process.pid}`;
  try {
    await writeFile(mine, `${process.pid}\n`, { mode: 0o600 }).catch(async (error: NodeJS.ErrnoException) => {
      // Its folder went (a `reset` renamed it away): this command's instance is a fresh one.
      if (error.code !== 'ENOENT') throw error;
      await mkdir(dirname(lockFile), { recursive: true, mode: 0o700 });
      await writeFile(mine, `${process.pid}\n`, { mode: 0o600 });
    });
  } catch (error) {
    await rm(mine, { force: true });
    throw lockError(lockFile, error);
  }
  try {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        await link(mine, lockFile);
        return { lock: heldLock(lockFile) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw lockError(lockFile, error);
      }
      const holder = await readLockHolder(lockFile);
      if (holder !== undefined && holder !== process.pid && (await isProcessAlive(holder))) return { holder };
      // The holder is gone: the lock is stale.
      await rm(lockFile, { force: true });
    }
  } finally {
    await rm(mine, { force: true });
  }
  throw new WarmvmError('E_LOCKED', `the lock ${lockFile} keeps changing hands`, { hint: 'another warmvm is racing for it; try again' });
}

function heldLock(lockFile: string): InstanceLock {
  let released = false;
  return {
    path: lockFile,
    async release() {
      if (released) return;
      released = true;
      const holder = await readLockHolder(lockFile);
      if (holder === process.pid) await rm(lockFile, { force: true });
    },
  };
}

/** The instance's lock; one held by a live process is refused with the way out. */
export async function acquireInstanceLock(lockFile: string, instanceName: string): Promise<InstanceLock> {
  const taken = await tryLock(lockFile);
  if ('lock' in taken) return taken.lock;
  throw new WarmvmError('E_LOCKED', `instance "${instanceName}" is busy: another warmvm (pid ${taken.holder}) is starting or stopping it`, {
    hint: `wait for it to finish, or use another instance with --name; if pid ${taken.holder} is not warmvm, remove ${lockFile}`,
  });
}

/** The live process that holds `lockFile`, if one does. */
export async function liveLockHolder(lockFile: string): Promise<number | undefined> {
  const holder = await readLockHolder(lockFile);
  return holder !== undefined && (await isProcessAlive(holder)) ? holder : undefined;
}

function lockError(lockFile: string, cause: unknown): WarmvmError {
  return new WarmvmError('E_LOCK', `cannot create the lock file ${lockFile}`, {
    hint: systemErrorFix(cause, dirname(lockFile), 'check that the warmvm home is writable'),
    cause,
  });
}

async function readLockHolder(lockFile: string): Promise<number | undefined> {
  const text = await readFile(lockFile, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
