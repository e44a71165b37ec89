import { randomBytes } from 'node:crypto';

/**
 * The shell lines `warmvm exec` runs in the guest through the agent's `guest-exec`. The agent
 * returns a program's output only once it has exited (qga/commands.c: `out-data` is filled in
 * when `exited` is true), so the wrapper sends the command's stdout and stderr to files in a
 * private folder, which the host reads while the command runs (`guest-file-read`). Each line is
 * POSIX sh, as busybox's `sh` (the demo guest) and dash (Debian) both run it; every value is
 * passed as a positional argument, never spliced into the script.
 */

/** What the wrapper prints on its own stdout (the agent's pipe) when it cannot run the command. */
export const NOT_FOUND_MARKER = 'warmvm-exec: not found';
export const NO_FOLDER_MARKER = 'warmvm-exec: no folder';

/** Exit codes the wrapper uses for the above, as shells do for a missing or unusable command. */
export const NOT_FOUND_EXIT = 127;
export const NO_FOLDER_EXIT = 126;

// $1: the folder, then the command and its arguments. `setsid` (busybox and util-linux) makes the
// command the leader of a process group of its own without forking (its pid stays the one the agent
// returned), so a timeout or Ctrl-C stops what it started too; without setsid only the command.
const WRAPPER = [
  'd=$1; shift',
  `command -v "$1" >/dev/null 2>&1 || { echo '${NOT_FOUND_MARKER}'; exit ${NOT_FOUND_EXIT}; }`,
  `(umask 077 && mkdir "$d" && : >"$d/out" && : >"$d/err") || { echo '${NO_FOLDER_MARKER}'; exit ${NO_FOLDER_EXIT}; }`,
  'command -v setsid >/dev/null 2>&1 && exec setsid "$@" >>"$d/out" 2>>"$d/err"',
  'exec "$@" >>"$d/out" 2>>"$d/err"',
].join('\n');

// The group first (the command leads it under setsid), the process alone when it does not.
const KILL = 'kill -s "$2" -- "-$1" 2>/dev/null || kill -s "$2" "$1" 2>/dev/null; exit 0';
const REMOVE = 'rm -rf -- "$1"';

/** A guest program and its arguments, as guest-exec takes them. */
export interface GuestInvocation {
  path: string;
  arg: string[];
}

/** A fresh private folder name under the guest's /tmp for one run's output files. */
export function outputFolder(random: Buffer = randomBytes(8)): string {
  return `/tmp/warmvm-exec-${random.toString('hex')}`;
}

export function outputFiles(folder: string): { stdout: string; stderr: string } {
  return { stdout: `${folder}/out`, stderr: `${folder}/err` };
}

/** Runs `command` with its stdout and stderr appended to the folder's files; stdin is the agent's. */
export function wrapperInvocation(folder: string, command: readonly string[]): GuestInvocation {
  if (command.length === 0) throw new Error('no command to run');
  return { path: '/bin/sh', arg: ['-c', WRAPPER, 'warmvm-exec', folder, ...command] };
}

/** Sends `signal` (TERM, KILL) to the command's process group, or to the command alone. */
export function killInvocation(pid: number, signal: 'TERM' | 'KILL'): GuestInvocation {
  return { path: '/bin/sh', arg: ['-c', KILL, 'warmvm-kill', String(pid), signal] };
}

export function removeInvocation(folder: string): GuestInvocation {
  return { path: '/bin/sh', arg: ['-c', REMOVE, 'warmvm-rm', folder] };
}

/** Why the wrapper did not run the command, read from what it printed on the agent's pipe. */
export function wrapperFailure(exitCode: number | undefined, ownStdout: string): 'not-found' | 'no-folder' | undefined {
  if (exitCode === NOT_FOUND_EXIT && ownStdout.includes(NOT_FOUND_MARKER)) return 'not-found';
  if (exitCode === NO_FOLDER_EXIT && ownStdout.includes(NO_FOLDER_MARKER)) return 'no-folder';
  return undefined;
}

/** The exit status a shell gives a process: its code, or 128 + the signal that killed it. */
export function shellExitStatus(exitCode: number | undefined, signal: number | undefined): number {
  if (signal !== undefined) return 128 + signal;
  return exitCode ?? 1;
}
