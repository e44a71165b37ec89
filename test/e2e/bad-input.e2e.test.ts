import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { cli, E2E_HOME } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';

// The CLI's answers to bad input: a clear error with its fix, exit status 1, nothing lost.
describe('bad input through the CLI', () => {
  const temp = useTempDirs();

  it('no QEMU', async () => {
    const result = await cli(['start', '--name', 'bad-noqemu', '--json'], { WARMVM_QEMU: '/nonexistent/qemu-system-x86_64' });
    expect(result.exitCode).toBe(1);
    expect(result.json.error).toMatchObject({ code: 'E_QEMU_MISSING', hint: expect.stringContaining('bookworm-backports') });
  });

  it('a QEMU older than 9.0', async () => {
    const fake = join(await temp(), 'qemu-old');
    await writeFile(fake, '#!/bin/sh\necho "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u13)"\n');
    await chmod(fake, 0o755);
    const result = await cli(['start', '--name', 'bad-oldqemu', '--json'], { WARMVM_QEMU: fake });
    expect(result.exitCode).toBe(1);
    expect(result.json.error).toMatchObject({ code: 'E_QEMU_OLD', message: expect.stringContaining('7.2.15') });
  });

  it('a config with a wrong type, and one with an unknown field', async () => {
    const dir = await temp();
    await writeFile(join(dir, 'type.json'), JSON.stringify({ cpus: 'two' }));
    await writeFile(join(dir, 'unknown.json'), JSON.stringify({ memoryMB: 512 }));
    const wrongType = await cli(['start', '--config', join(dir, 'type.json'), '--json']);
    expect(wrongType.exitCode).toBe(1);
    expect(wrongType.json.error).toMatchObject({ code: 'E_CONFIG', message: expect.stringContaining('"cpus"') });
    const unknown = await cli(['start', '--config', join(dir, 'unknown.json')]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain('"memoryMB" is not a known field');
    expect(unknown.stderr).toContain('fix:');
  });

  it("a config's local image.disk that is not there fails before launch, naming the path", async () => {
    const dir = await temp();
    await writeFile(join(dir, 'disk.json'), JSON.stringify({ image: { disk: 'missing.qcow2' } }));
    const result = await cli(['start', '--name', 'bad-nodisk', '--config', join(dir, 'disk.json'), '--json']);
    expect(result.exitCode).toBe(1);
    expect(result.json).toMatchObject({ failedState: 'start.image', error: { code: 'E_IMAGE_MISSING', message: expect.stringContaining(join(dir, 'missing.qcow2')) } });
  });

  it('stop of an instance that is not running', async () => {
    const result = await cli(['stop', '--name', 'bad-never-started', '--json']);
    expect(result.exitCode).toBe(1);
    expect(result.json.error).toMatchObject({ code: 'E_NOT_RUNNING', hint: expect.stringContaining('warmvm status') });
  });

  it('a stale pidfile from a crash is recognised and cleaned', async () => {
    const paths = instancePaths(E2E_HOME, 'bad-stale');
    await mkdir(paths.dir, { recursive: true });
    await writeFile(paths.pidFile, '999999999\n');
    await writeFile(paths.qmpSocket, '');
    const status = await cli(['status', '--name', 'bad-stale', '--json']);
    expect(status.json).toMatchObject({ state: 'stopped', stale: true });
    const stopped = await cli(['stop', '--name', 'bad-stale', '--json']);
    expect(stopped.exitCode).toBe(0);
    expect(stopped.json).toMatchObject({ outcome: 'stale-cleaned', removed: expect.arrayContaining([paths.pidFile, paths.qmpSocket]) });
    expect((await cli(['stop', '--name', 'bad-stale', '--json'])).json.error).toMatchObject({ code: 'E_NOT_RUNNING' });
  });

  it('an unwritable WARMVM_HOME', async () => {
    const file = join(await temp(), 'not-a-folder');
    await writeFile(file, '');
    const result = await cli(['start', '--json'], { WARMVM_HOME: join(file, 'home') });
    expect(result.exitCode).toBe(1);
    expect(result.json.error).toMatchObject({ code: 'E_HOME_UNWRITABLE', hint: expect.stringContaining('WARMVM_HOME') });
  });

  it('a full disk: the error names the cause (ENOSPC) and the fix is space, not permissions; no empty lock is left', async () => {
    const home = join(await temp(), 'full-home');
    await mkdir(home);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', home]);
    try {
      await cli(['doctor', '--json'], { WARMVM_HOME: home });
      // Filled after the folders exist: what fails is the first file with content, the lock.
      await execa('dd', ['if=/dev/zero', `of=${join(home, 'fill')}`, 'bs=4k'], { reject: false });
      const result = await cli(['start', '--name', 'full', '--json'], { WARMVM_HOME: home });
      expect(result.exitCode).toBe(1);
      expect(result.json.error).toMatchObject({
        code: 'E_LOCK',
        message: expect.stringContaining('no space left on device'),
        hint: expect.stringContaining('free some space'),
      });
      const human = await cli(['start', '--name', 'full'], { WARMVM_HOME: home });
      expect(human.stderr).toContain('caused by: ENOSPC');
      expect(await readdir(instancePaths(home, 'full').dir)).toEqual([]);
    } finally {
      await execa('umount', [home]);
    }
  });

  it('a missing WARMVM_HOME is created', async () => {
    const home = join(await temp(), 'fresh-home');
    const result = await cli(['doctor', '--json'], { WARMVM_HOME: home });
    const checks = result.json.checks as { check: string; ok: boolean }[];
    expect(checks.find((check) => check.check === 'home')).toMatchObject({ ok: true });
  });
});
