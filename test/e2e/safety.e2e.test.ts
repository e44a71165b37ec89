import { mkdir, readdir, readFile, rmdir, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { listCaptureDirs } from '../../adapters/snapshot/store.js';
import { cli, E2E_HOME } from '../helpers/cli.js';
import { secretFingerprint, sha256 } from '../helpers/fingerprint.js';
import { launchedPids } from '../helpers/instance-leftovers.js';
import { useTempDirs } from '../helpers/temp.js';
import { expectTraceMatches } from '../helpers/trace-expect.js';

// What warmvm promises when the disk fills and when another local user looks: each test has a
// home of its own (its images shared with the other e2e tests', so the demo guest is built once).
const TIMEOUT = 300_000;

/** A fresh home, made by warmvm itself, whose images are the shared e2e home's. */
async function homeIn(dir: string): Promise<string> {
  const home = join(dir, 'home');
  await mkdir(join(E2E_HOME, 'images'), { recursive: true });
  await cli(['doctor'], { WARMVM_HOME: home });
  await rmdir(join(home, 'images'));
  await symlink(join(E2E_HOME, 'images'), join(home, 'images'));
  return home;
}

describe('safety on real QEMU', () => {
  const temp = useTempDirs();

  it(
    'a capture that fails on a full disk with the VM paused ends healthy on that same VM, the failure a warning; the next start captures',
    async () => {
      const home = await homeIn(await temp());
      const snapshots = homePaths(home).snapshots;
      // Room for the capture lock and folder, not for the device state QEMU migrates (~0.3 MB).
      await execa('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', snapshots]);
      const env = { WARMVM_HOME: home };
      try {
        const started = await cli(['start', '--name', 'full', '--json'], env);
        expect(started.json, started.stderr).toMatchObject({ outcome: 'healthy', path: 'cold+capture', rotated: true, snapshot: null });
        const warnings = started.json.warnings as string[];
        expect(warnings).toEqual([expect.stringMatching(/capture failed in capture\.migrating.*no space left on device/i)]);
        const entries = await expectTraceMatches('full', 'capture-kept.json', home);
        expect(entries.find((entry) => entry.state === 'capture.kept')?.warning).toContain('runs on');
        // One QEMU only, the cold boot's, and it is the one that runs, with fresh secrets.
        expect(launchedPids(entries)).toEqual([started.json.pid]);
        const secrets = await readFile(instancePaths(home, 'full').secretsFile, 'utf8');
        expect(await secretFingerprint(started)).toBe(sha256(secrets));
        expect(await listCaptureDirs(snapshots)).toEqual([]);
        const status = await cli(['status', '--name', 'full', '--json'], env);
        expect(status.json).toMatchObject({ state: 'running', pid: started.json.pid });
        expect((await cli(['stop', '--name', 'full', '--json'], env)).json).toMatchObject({ outcome: 'stopped' });
      } finally {
        await cli(['stop', '--name', 'full'], env);
        await execa('umount', [snapshots]);
      }
      const again = await cli(['start', '--name', 'full', '--json'], env);
      expect(again.json, again.stderr).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume', warnings: [] });
      await cli(['stop', '--name', 'full'], env);
    },
    TIMEOUT,
  );

  it(
    'private by default: another local user can read no file of a home and connect to neither socket',
    async () => {
      const home = await homeIn(await temp());
      const env = { WARMVM_HOME: home };
      const probe = 'warmvm-probe';
      await execa('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', probe], { reject: false });
      /** As the other user: 0 when it could do it. */
      const asProbe = async (code: string, ...args: string[]): Promise<number | undefined> =>
        (await execa('runuser', ['-u', probe, '--', process.execPath, '-e', code, ...args], { reject: false })).exitCode;
      const canRead = (file: string) => asProbe("require('fs').readFileSync(process.argv[1])", file);
      const canConnect = (socket: string) =>
        asProbe("const s=require('net').connect(process.argv[1]);s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1))", socket);
      try {
        const started = await cli(['start', '--name', 'private', '--json'], env);
        expect(started.json, started.stderr).toMatchObject({ outcome: 'healthy', path: 'cold+capture+resume' });
        const paths = instancePaths(home, 'private');
        // Nothing warmvm wrote is readable by group or others, whatever folder it lies in.
        const files = await filesUnder(home, ['images']);
        const found = files.map((file) => file.slice(home.length + 1));
        for (const expected of ['instances/private/secrets.env', 'instances/private/state.json', 'instances/private/qmp.sock', 'instances/private/qga.sock']) {
          expect(found).toContain(expected);
        }
        expect(found.some((file) => file.endsWith('/mem.raw'))).toBe(true);
        const open = [];
        for (const file of [home, ...files]) if (((await stat(file)).mode & 0o077) !== 0) open.push(`${file} ${((await stat(file)).mode & 0o777).toString(8)}`);
        expect(open).toEqual([]);
        // As the other user: not through the folders, and not even with them opened to it.
        expect(await canRead(paths.secretsFile)).not.toBe(0);
        expect(await canConnect(paths.qmpSocket)).not.toBe(0);
        await execa('chmod', ['o+x', home, join(home, 'instances'), paths.dir, join(home, 'snapshots')]);
        for (const file of files) {
          const isSocket = (await stat(file)).isSocket();
          expect(await (isSocket ? canConnect(file) : canRead(file)), file).not.toBe(0);
        }
      } finally {
        await cli(['stop', '--name', 'private'], env);
      }
    },
    TIMEOUT,
  );
});

/** Every file and folder under `root`, except under the top folders named in `skip`. */
async function filesUnder(root: string, skip: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (skip.some((top) => path === join(root, top) || path.startsWith(`${join(root, top)}/`))) continue;
    if (!entry.isSymbolicLink()) out.push(path);
  }
  return out;
}
