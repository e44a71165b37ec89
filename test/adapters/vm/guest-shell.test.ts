import { execa } from 'execa';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  killInvocation,
  NOT_FOUND_MARKER,
  outputFiles,
  outputFolder,
  removeInvocation,
  shellExitStatus,
  wrapperFailure,
  wrapperInvocation,
  type GuestInvocation,
} from '../../../adapters/vm/guest-shell.js';
import { useTempDirs } from '../../helpers/temp.js';

// The wrapper's lines run here on the host's /bin/sh (dash), a POSIX sh as the guests' are.
const tempDir = useTempDirs('wvm-shell-');

/** Running, not merely a zombie waiting for its new parent to reap it; given a moment for a signal to land. */
async function stillRunning(pid: number): Promise<boolean> {
  for (let tries = 0; tries < 100; tries += 1) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function run(invocation: GuestInvocation, input = ''): Promise<{ exitCode?: number; stdout: string; signal?: string }> {
  return execa(invocation.path, invocation.arg, { reject: false, input }) as never;
}

describe('the exec wrapper', () => {
  it('sends the command stdout and stderr to its private folder and keeps its exit code and stdin', async () => {
    const folder = join(await tempDir(), 'run');
    const result = await run(wrapperInvocation(folder, ['sh', '-c', 'cat; echo "to err $1" >&2; exit 5', 'sh', "it's $HOME"]), 'from stdin\n');
    expect(result.exitCode).toBe(5);
    expect(result.stdout).toBe('');
    const files = outputFiles(folder);
    expect(await readFile(files.stdout, 'utf8')).toBe('from stdin\n');
    expect(await readFile(files.stderr, 'utf8')).toBe("to err it's $HOME\n");
    expect((await stat(folder)).mode & 0o777).toBe(0o700);
  });

  it('runs the command as the leader of its own process group', async () => {
    const folder = join(await tempDir(), 'run');
    const result = await run(wrapperInvocation(folder, ['sh', '-c', 'echo $$ $(ps -o pgid= -p $$)']));
    expect(result.exitCode).toBe(0);
    const [pid, pgid] = (await readFile(outputFiles(folder).stdout, 'utf8')).trim().split(/\s+/);
    expect(pgid).toBe(pid);
  });

  it('says "not found" on its own stdout, with 127, for a program that is not there', async () => {
    const folder = join(await tempDir(), 'run');
    const result = await run(wrapperInvocation(folder, ['warmvm-no-such-program']));
    expect(result.exitCode).toBe(127);
    expect(result.stdout).toContain(NOT_FOUND_MARKER);
    expect(wrapperFailure(result.exitCode, result.stdout)).toBe('not-found');
    // A command of its own that exits 127 is not a missing one.
    expect(wrapperFailure(127, '')).toBeUndefined();
  });

  it('says so when it cannot make the folder', async () => {
    const result = await run(wrapperInvocation('/proc/warmvm-cannot/run', ['true']));
    expect(wrapperFailure(result.exitCode, result.stdout)).toBe('no-folder');
  });

  it('kills the process group, then removes the folder', async () => {
    const folder = join(await tempDir(), 'run');
    const command = execa('/bin/sh', wrapperInvocation(folder, ['sh', '-c', 'sleep 3133 & echo "started $!"; wait']).arg.slice(0), { reject: false });
    for (let tries = 0; tries < 200 && !(await readFile(outputFiles(folder).stdout, 'utf8').catch(() => '')).includes('started'); tries += 1)
      await new Promise((resolve) => setTimeout(resolve, 25));
    await run(killInvocation(command.pid as number, 'TERM'));
    const result = await command;
    expect(result.signal).toBe('SIGTERM');
    // The command's child too: the group went, not only its leader.
    const child = Number((await readFile(outputFiles(folder).stdout, 'utf8')).split(' ')[1]);
    const running = await stillRunning(child);
    if (running) process.kill(child, 'SIGKILL');
    expect(running).toBe(false);
    await run(removeInvocation(folder));
    await expect(stat(folder)).rejects.toThrow();
  });

  it('names a fresh folder under /tmp each time', () => {
    expect(outputFolder(Buffer.alloc(8, 0xab))).toBe('/tmp/warmvm-exec-abababababababab');
    expect(outputFolder()).not.toBe(outputFolder());
    expect(() => wrapperInvocation('/tmp/x', [])).toThrow();
  });

  it('gives a signal-killed command 128 + the signal, as shells do', () => {
    expect(shellExitStatus(0, undefined)).toBe(0);
    expect(shellExitStatus(42, undefined)).toBe(42);
    expect(shellExitStatus(undefined, 9)).toBe(137);
    expect(shellExitStatus(undefined, 15)).toBe(143);
  });
});
