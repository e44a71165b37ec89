import { readFile } from 'node:fs/promises';

/**
 * Whether `pid` is a live process. A zombie counts as gone: a QEMU we started and killed
 * stays a zombie until our process reaps it, yet `kill(pid, 0)` still succeeds on it.
 */
export async function isProcessAlive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return true; // no procfs (macOS): trust kill(0)
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** The process's command line, or undefined where it cannot be read. */
export async function processCommandLine(pid: number): Promise<string[] | undefined> {
  const raw = await readFile(`/proc/${pid}/cmdline`).catch(() => undefined);
  if (raw === undefined || raw.length === 0) return undefined;
  return raw
    .toString('utf8')
    .split('\0')
    .filter((part) => part.length > 0);
}
