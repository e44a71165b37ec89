import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { WarmvmError } from '../support/errors.js';
import { isProcessAlive, processCommandLine } from '../support/process-alive.js';
import { sleep } from '../support/sleep.js';

export interface QemuExit {
  code: number | undefined;
  signal: string | undefined;
}

export interface QemuProcess {
  pid: number;
  /** Settles when the process is gone; never rejects. */
  exited: Promise<QemuExit>;
  hasExited(): boolean;
}

export interface LaunchOptions {
  binary: string;
  argv: string[];
  logFile: string;
  pidFile: string;
}

/**
 * Starts QEMU detached (its own process group, output appended to the instance's log, not
 * killed when warmvm exits) and writes the pidfile. Stopping it is the caller's cleanup.
 */
export async function spawnQemu(options: LaunchOptions): Promise<QemuProcess> {
  await keepLogBounded(options.logFile);
  await writeFile(options.logFile, `--- ${new Date().toISOString()} ${options.binary} ${options.argv.join(' ')}\n`, { flag: 'a' });
  // node's own spawn, not execa: importing execa costs ~100 ms, a tenth of a whole resume.
  const log = await open(options.logFile, 'a');
  let gone = false;
  let exited: Promise<QemuExit>;
  let child: ChildProcess;
  try {
    child = spawn(options.binary, options.argv, { detached: true, stdio: ['ignore', log.fd, log.fd] });
    // At once and synchronously: a warmvm killed from here on leaves the pid of the QEMU it started
    // (written after an await, a kill in between left a QEMU that no pidfile named: status said stopped).
    if (child.pid !== undefined) writeFileSync(options.pidFile, `${child.pid}\n`);
    // Listening before anything is awaited: a QEMU that fails at once exits within that wait.
    exited = new Promise<QemuExit>((resolve) => {
      child.once('exit', (code, signal) => {
        gone = true;
        resolve({ code: code ?? undefined, signal: signal ?? undefined });
      });
      child.once('error', () => {
        gone = true;
        resolve({ code: undefined, signal: undefined });
      });
    });
  } finally {
    // The child has its own copy of the descriptor.
    await log.close();
  }
  // Let warmvm exit while QEMU runs on: the child holds no pipe to us.
  child.unref();
  const pid = child.pid;
  if (pid === undefined) {
    const exit = await exited;
    throw new WarmvmError('E_QEMU_SPAWN', `QEMU (${options.binary}) could not be started (exit ${exit.code ?? 'none'})`, {
      hint: `see ${options.logFile}; run "warmvm doctor" to check the QEMU install`,
    });
  }
  return { pid, exited, hasExited: () => gone };
}

/** Past this, a launch starts a new log and keeps the old one as `<log>.1` (a soak of 200 starts grew it by 1 KB each). */
export const QEMU_LOG_MAX_BYTES = 1024 * 1024;

async function keepLogBounded(logFile: string): Promise<void> {
  const size = await stat(logFile).then(
    (found) => found.size,
    () => 0,
  );
  if (size > QEMU_LOG_MAX_BYTES) await rename(logFile, `${logFile}.1`);
}

/** The last lines of QEMU's log, for an error a person reads. */
export async function tailLog(file: string, lines = 8): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .trimEnd()
    .split('\n')
    .filter((line) => !line.startsWith('--- '))
    .slice(-lines)
    .join('\n');
}

export async function readPidFile(pidFile: string): Promise<number | undefined> {
  const text = await readFile(pidFile, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Whether `pid` is the QEMU of this instance: alive, and its command line names the
 * instance's QMP socket (so a reused pid is never taken for our QEMU, nor killed).
 */
export async function isInstanceQemu(pid: number, qmpSocket: string): Promise<boolean> {
  if (!(await isProcessAlive(pid))) return false;
  const argv = await processCommandLine(pid);
  if (argv === undefined) return true; // no procfs to tell: trust the pidfile
  return argv.some((arg) => arg.includes(qmpSocket));
}

export interface StopOptions {
  /** How long SIGTERM gets before SIGKILL. */
  graceMs: number;
  /** The exit promise when this process started QEMU (reaps it); else the pid is polled. */
  exited?: Promise<QemuExit>;
}

/** SIGTERM, then SIGKILL after the grace bound; resolves once the process is gone. */
export async function stopProcess(pid: number, options: StopOptions): Promise<'terminated' | 'killed' | 'already-gone'> {
  if (!(await isProcessAlive(pid))) return 'already-gone';
  signalProcess(pid, 'SIGTERM');
  if (await waitGone(pid, options.graceMs, options.exited)) return 'terminated';
  signalProcess(pid, 'SIGKILL');
  if (await waitGone(pid, 5_000, options.exited)) return 'killed';
  throw new WarmvmError('E_QEMU_STOP', `QEMU (pid ${pid}) survived SIGKILL`, { hint: `check the process with: ps -o pid,stat,cmd -p ${pid}` });
}

/** Sends `how` and resolves once the process is gone; polls until then, or until aborted. */
export async function signalAndWaitGone(pid: number, how: NodeJS.Signals, signal: AbortSignal): Promise<{ gone: true }> {
  signalProcess(pid, how);
  while (await isProcessAlive(pid)) {
    if (signal.aborted) throw new WarmvmError('E_ABORTED', `stopped waiting for QEMU (pid ${pid}) to exit after ${how}`, { cause: signal.reason });
    await sleep(20);
  }
  return { gone: true };
}

/** Resolves true once `pid` is gone (a QEMU that was told to quit), false when it is still there after `boundMs`. */
export async function waitUntilGone(pid: number, boundMs: number): Promise<boolean> {
  return await waitGone(pid, boundMs);
}

function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

async function waitGone(pid: number, boundMs: number, exited?: Promise<QemuExit>): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  let settled = false;
  void exited?.then(() => {
    settled = true;
  });
  while (Date.now() < deadline) {
    if (settled || !(await isProcessAlive(pid))) {
      // Give our own child a moment to be reaped so it leaves no zombie behind.
      if (exited && !settled) await Promise.race([exited, sleep(200)]);
      return true;
    }
    await sleep(20);
  }
  return false;
}

/** Removes the runtime files a QEMU leaves: sockets and pidfile. */
export async function removeRuntimeFiles(files: string[]): Promise<void> {
  for (const file of files) await rm(file, { force: true });
}
