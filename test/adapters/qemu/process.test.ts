import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../../adapters/support/process-alive.js';
import { isInstanceQemu, QEMU_LOG_MAX_BYTES, readPidFile, spawnQemu, stopProcess, tailLog } from '../../../adapters/qemu/process.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

/** A stand-in for QEMU: what matters here is the process handling, not the emulator. */
async function fakeBinary(dir: string, body: string): Promise<string> {
  const file = join(dir, 'fake-qemu');
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

describe('QEMU process', () => {
  it('starts detached, writes the pidfile and the log, and stops with SIGTERM', async () => {
    const dir = await temp();
    const binary = await fakeBinary(dir, 'echo "qemu says hi"; while :; do sleep 0.05; done');
    const proc = await spawnQemu({ binary, argv: ['-chardev', `socket,path=${dir}/qmp.sock`], logFile: join(dir, 'qemu.log'), pidFile: join(dir, 'qemu.pid') });
    expect(await readPidFile(join(dir, 'qemu.pid'))).toBe(proc.pid);
    expect(await isProcessAlive(proc.pid)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await tailLog(join(dir, 'qemu.log'))).toBe('qemu says hi');
    // The pid is this instance's only if its command line names the instance's QMP socket.
    expect(await isInstanceQemu(proc.pid, `${dir}/qmp.sock`)).toBe(true);
    expect(await isInstanceQemu(proc.pid, '/elsewhere/qmp.sock')).toBe(false);
    expect(await stopProcess(proc.pid, { graceMs: 2_000, exited: proc.exited })).toBe('terminated');
    expect(await proc.exited).toMatchObject({ signal: 'SIGTERM' });
    expect(proc.hasExited()).toBe(true);
  });

  it('appends each launch to the log, and past its bound starts a new one, keeping the last as <log>.1', async () => {
    const dir = await temp();
    const log = join(dir, 'qemu.log');
    const binary = await fakeBinary(dir, 'echo "launch $1"');
    const launch = async (n: number) => {
      const proc = await spawnQemu({ binary, argv: [String(n)], logFile: log, pidFile: join(dir, 'qemu.pid') });
      await proc.exited;
    };
    await launch(1);
    await launch(2);
    expect(await readFile(log, 'utf8')).toMatch(/launch 1\n[\s\S]*launch 2\n$/);
    await writeFile(log, 'x'.repeat(QEMU_LOG_MAX_BYTES + 1));
    await launch(3);
    expect((await readFile(`${log}.1`, 'utf8')).length).toBe(QEMU_LOG_MAX_BYTES + 1);
    expect(await readFile(log, 'utf8')).toMatch(/^--- .*\nlaunch 3\n$/);
  });

  it('kills with SIGKILL what ignores SIGTERM past the grace bound', async () => {
    const dir = await temp();
    const binary = await fakeBinary(dir, 'trap "" TERM; while :; do sleep 0.05; done');
    const proc = await spawnQemu({ binary, argv: [], logFile: join(dir, 'qemu.log'), pidFile: join(dir, 'qemu.pid') });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await stopProcess(proc.pid, { graceMs: 300, exited: proc.exited })).toBe('killed');
    expect(await isProcessAlive(proc.pid)).toBe(false);
  });

  it('notices an exit on its own and keeps the code', async () => {
    const dir = await temp();
    const binary = await fakeBinary(dir, 'echo "qemu-system-x86_64: -m: bad size" >&2; exit 1');
    const proc = await spawnQemu({ binary, argv: [], logFile: join(dir, 'qemu.log'), pidFile: join(dir, 'qemu.pid') });
    expect(await proc.exited).toEqual({ code: 1, signal: undefined });
    expect(await readFile(join(dir, 'qemu.log'), 'utf8')).toContain('bad size');
    expect(await stopProcess(proc.pid, { graceMs: 100 })).toBe('already-gone');
  });
});
