import { createServer, type Server } from 'node:net';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireInstanceLock, tryLock } from '../../../adapters/instance/lock.js';
import { ensureHome, ensureInstanceDir, instancePaths, resolveHome, validateInstanceName } from '../../../adapters/instance/paths.js';
import { assertPortFree, findFreePort, isPortFree } from '../../../adapters/instance/ports.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

describe('warmvm home', () => {
  it('WARMVM_HOME wins over ~/.warmvm', () => {
    expect(resolveHome({ WARMVM_HOME: '/srv/wvm' })).toBe('/srv/wvm');
    expect(resolveHome({})).toMatch(/\.warmvm$/);
  });

  it('creates a missing home with its folders', async () => {
    const home = join(await temp(), 'new', 'home');
    const paths = await ensureHome(home);
    const instance = await ensureInstanceDir(home, 'web');
    expect(paths.images).toBe(join(home, 'images'));
    expect(instance.dir).toBe(join(home, 'instances', 'web'));
  });

  it('refuses a home that cannot be written, with the fix', async () => {
    const file = join(await temp(), 'a-file');
    await writeFile(file, '');
    await expect(ensureHome(join(file, 'home'))).rejects.toMatchObject({ code: 'E_HOME_UNWRITABLE', hint: expect.stringContaining('WARMVM_HOME') });
    await expect(ensureHome(file)).rejects.toMatchObject({ code: 'E_HOME_NOT_DIR' });
  });

  it('refuses an instance name that is not a plain word', () => {
    expect(() => validateInstanceName('../etc')).toThrow(/not valid/);
    expect(validateInstanceName('web-1.dev')).toBe('web-1.dev');
  });

  it('refuses an instance folder too deep for a unix socket', async () => {
    const home = join(await temp(), 'x'.repeat(90));
    await expect(ensureInstanceDir(home, 'default')).rejects.toMatchObject({ code: 'E_PATH_TOO_LONG' });
  });
});

describe('instance lock', () => {
  it('lets one holder in and tells the second who holds it', async () => {
    const paths = instancePaths(await temp(), 'default');
    await ensureInstanceDir(paths.dir.replace(/\/instances\/default$/, ''), 'default');
    const first = await acquireInstanceLock(paths.lockFile, 'default');
    // Our own pid is alive, so a lock written by "another process" with it is held.
    await first.release();
    await writeFile(paths.lockFile, `${process.ppid}\n`);
    await expect(acquireInstanceLock(paths.lockFile, 'default')).rejects.toMatchObject({
      code: 'E_LOCKED',
      message: expect.stringContaining(String(process.ppid)),
    });
  });

  it('takes a lock whose folder a reset renamed away meanwhile in a fresh folder, and leaves only the lock behind', async () => {
    const paths = instancePaths(await temp(), 'default');
    const lock = await acquireInstanceLock(paths.lockFile, 'default');
    expect(await readdir(paths.dir)).toEqual([basename(paths.lockFile)]);
    expect((await readFile(paths.lockFile, 'utf8')).trim()).toBe(String(process.pid));
    await lock.release();
    expect(await readdir(paths.dir)).toEqual([]);
  });

  it('takes over a lock whose holder died', async () => {
    const dir = await temp();
    const lockFile = join(dir, 'start.lock');
    await writeFile(lockFile, '999999999\n');
    const lock = await acquireInstanceLock(lockFile, 'default');
    expect((await readFile(lockFile, 'utf8')).trim()).toBe(String(process.pid));
    await lock.release();
    await expect(readFile(lockFile)).rejects.toThrow();
  });
  it('tryLock says which live process holds a lock instead of refusing (a capture lock is waited for)', async () => {
    const lockFile = join(await temp(), '.lock-k');
    await writeFile(lockFile, `${process.ppid}\n`);
    expect(await tryLock(lockFile)).toEqual({ holder: process.ppid });
    await writeFile(lockFile, '999999999\n');
    const taken = await tryLock(lockFile);
    expect('lock' in taken).toBe(true);
    if ('lock' in taken) await taken.lock.release();
  });
});

describe('ports', () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  it('finds a free port and sees it taken once something listens', async () => {
    const port = await findFreePort();
    expect(await isPortFree(port)).toBe(true);
    server = createServer();
    await new Promise<void>((resolve) => server?.listen(port, '127.0.0.1', resolve));
    expect(await isPortFree(port)).toBe(false);
    await expect(assertPortFree(port, 'forwarded to guest port 8080')).rejects.toMatchObject({
      code: 'E_PORT_TAKEN',
      message: expect.stringContaining(String(port)),
    });
  });
});
