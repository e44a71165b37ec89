import { mkdir, readdir, readFile, rmdir, stat, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { homePaths, instancePaths } from '../../adapters/instance/paths.js';
import { listCaptureDirs } from '../../adapters/snapshot/store.js';
import { readTraceFile } from '../../adapters/trace/file.js';
import { CLI, cli, E2E_HOME } from '../helpers/cli.js';
import { secretFingerprint, sha256 } from '../helpers/fingerprint.js';
import { launchedPids, liveInstanceQemus } from '../helpers/instance-leftovers.js';
import { useTempDirs } from '../helpers/temp.js';
import { expectTraceMatches } from '../helpers/trace-expect.js';
import { currentRun, waitForState } from '../helpers/trace-watch.js';

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
    'a start killed (SIGKILL) in any state of the cold boot, the capture or the resume: status says so, and the next start stops its QEMU and ends healthy',
    async () => {
      const home = await homeIn(await temp());
      const env = { WARMVM_HOME: home };
      const name = 'killed';
      const paths = instancePaths(home, name);
      // In order: each cycle's recovery leaves what the next needs (a snapshot, or none after reset).
      const cycles: { state: string; args?: string[]; reset?: boolean }[] = [
        { state: 'coldBoot.booting' },
        { state: 'resume.incoming' },
        { state: 'resume.cont' },
        { state: 'resume.rotating' },
        { state: 'resume.probing' },
        { state: 'coldBoot.probing', reset: true },
        { state: 'capture.migrating', reset: true },
        { state: 'coldBoot.launching', args: ['--cold'] },
      ];
      const seen: string[] = [];
      try {
        for (const cycle of cycles) {
          if (cycle.reset) await cli(['reset', '--name', name, '--snapshot'], env);
          const since = Date.now();
          let ended = false;
          const run = execa(process.execPath, [CLI, 'start', '--name', name, '--json', ...(cycle.args ?? [])], { env, reject: false, stdin: 'ignore' });
          void run.finally(() => (ended = true));
          const reached = await waitForState(name, cycle.state, since, () => ended, 120_000, home);
          expect(reached, `${cycle.state} was never entered`).toBeDefined();
          run.kill('SIGKILL');
          await run;
          const landed = currentRun(name, since, home).at(-1)?.state ?? 'none';
          seen.push(`${cycle.state} → killed in ${landed}`);
          const orphans = await liveInstanceQemus(name, home);
          const status = await cli(['status', '--name', name, '--json'], env);
          if (orphans.length > 0) {
            expect(status.json, landed).toMatchObject({ state: 'running', ready: false, busyWith: null });
            expect((await cli(['status', '--name', name], env)).stdout).toContain('the start that launched it did not finish');
          }
          const again = await cli(['start', '--name', name, '--json'], env);
          expect(again.json, `after a kill in ${landed}: ${again.stderr}`).toMatchObject({ outcome: 'healthy' });
          expect(await liveInstanceQemus(name, home), landed).toEqual([again.json.pid]);
          const trace = await readTraceFile(paths.traceFile);
          if (orphans.length > 0) expect(trace.find((entry) => entry.from === 'start.preflight')?.event.output).toMatchObject({ unfinishedStopped: orphans[0] });
          expect((await cli(['stop', '--name', name, '--json'], env)).json, landed).toMatchObject({ outcome: 'stopped' });
          expect(await listCaptureDirs(homePaths(home).snapshots), landed).toEqual([]);
        }
      } finally {
        process.stdout.write(`killed starts: ${seen.join('; ')}\n`);
        await cli(['stop', '--name', name], env);
      }
    },
    TIMEOUT,
  );

  it(
    'Ctrl-C of stop --suspend cancels the suspend: exit 130, the instance runs on healthy, nothing half-written is left',
    async () => {
      const home = await homeIn(await temp());
      const env = { WARMVM_HOME: home };
      const name = 'suspend-cut';
      try {
        const started = await cli(['start', '--name', name, '--json'], env);
        expect(started.json, started.stderr).toMatchObject({ outcome: 'healthy' });
        const since = Date.now();
        let ended = false;
        const run = execa(process.execPath, [CLI, 'stop', '--suspend', '--name', name, '--json'], { env, reject: false, stdin: 'ignore' });
        void run.finally(() => (ended = true));
        expect(await waitForState(name, 'stop.suspending', since, () => ended, 60_000, home), 'the stop never reached suspending').toBeDefined();
        run.kill('SIGINT');
        const result = await run;
        expect(result.exitCode, String(result.stderr)).toBe(130);
        expect(JSON.parse(String(result.stdout).trim().split('\n').at(-1) ?? '{}').error).toMatchObject({ code: 'E_ABORTED' });
        expect((await readdir(instancePaths(home, name).dir)).filter((entry) => entry.startsWith('suspended'))).toEqual([]);
        const status = await cli(['status', '--name', name, '--json'], env);
        expect(status.json).toMatchObject({ state: 'running', ready: true, pid: started.json.pid });
        expect((status.json.health as { status: number }[])[0]?.status).toBe(200);
      } finally {
        await cli(['stop', '--name', name], env);
      }
    },
    TIMEOUT,
  );

  it(
    'a first start publishes durably (strace): each file flushed before the rename that publishes it, its folder flushed after',
    async () => {
      const home = await homeIn(await temp());
      const log = join(home, '..', 'strace.log');
      // -b execve: QEMU, once exec'd, is no longer traced (strace would wait for it to exit).
      const traced = await execa(
        'strace',
        ['-f', '-b', 'execve', '-y', '-qq', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', '-o', log, process.execPath, CLI, 'start', '--name', 'durable', '--json'],
        {
          env: { WARMVM_HOME: home },
          reject: false,
          stdin: 'ignore',
        },
      );
      try {
        expect(traced.stdout, traced.stderr).toContain('"outcome":"healthy"');
        const calls = syscalls(await readFile(log, 'utf8'));
        const snapshots = homePaths(home).snapshots;
        const published = calls.filter(
          (call) => call.name.startsWith('rename') && /\/(manifest\.json|verified\.json|secrets\.env|state\.json)$|\/snapshots\/[0-9a-f]{16}$/.test(call.paths[1] ?? ''),
        );
        const names = published.map((call) => (call.paths[1] ?? '').slice(home.length + 1));
        expect(names).toHaveLength(5);
        expect(names).toEqual(
          expect.arrayContaining([
            'instances/durable/secrets.env',
            'instances/durable/state.json',
            expect.stringMatching(/^snapshots\/\.capture-.*\/manifest\.json$/),
            expect.stringMatching(/^snapshots\/\.capture-.*\/verified\.json$/),
            expect.stringMatching(/^snapshots\/[0-9a-f]{16}$/),
          ]),
        );
        const flushedBefore = (path: string, index: number) => calls.some((call) => call.name.endsWith('sync') && call.paths[0] === path && call.done < index);
        const flushedAfter = (path: string, index: number) => calls.some((call) => call.name.endsWith('sync') && call.paths[0] === path && call.at > index);
        for (const rename of published) {
          const [from = '', to = ''] = rename.paths;
          expect(flushedBefore(from, rename.at), `${from} flushed before it is renamed to ${to}`).toBe(true);
          expect(flushedAfter(dirname(to), rename.at), `${dirname(to)} flushed after ${to} is published`).toBe(true);
        }
        // The snapshot's big files, flushed (wherever they lay then) before its folder is published.
        const commit = published.find((call) => (call.paths[1] ?? '').startsWith(`${snapshots}/`) && !(call.paths[1] ?? '').includes('.capture-'));
        for (const file of ['mem.raw', 'state.raw']) {
          expect(
            calls.some((call) => call.name === 'fdatasync' && call.paths[0]?.endsWith(`/${file}`) && call.done < (commit?.at ?? -1)),
            `${file} flushed before the commit`,
          ).toBe(true);
        }
      } finally {
        await cli(['stop', '--name', 'durable'], { WARMVM_HOME: home });
      }
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

interface Syscall {
  name: string;
  /** Paths it names: an fd's (strace -y) or a rename's two. */
  paths: string[];
  /** Its line in the log, and the line where it returned (later, for one strace saw unfinished). */
  at: number;
  done: number;
}

/** The calls of an strace -f -y log: `PID name(args) = N`, or `<unfinished ...>` then `<... name resumed>`. */
function syscalls(log: string): Syscall[] {
  const calls: Syscall[] = [];
  const pending = new Map<string, Syscall>();
  log.split('\n').forEach((line, index) => {
    const resumed = /^(\d+) +<\.\.\. (\w+) resumed>/.exec(line);
    if (resumed) {
      const call = pending.get(`${resumed[1]} ${resumed[2]}`);
      if (call) call.done = index;
      return;
    }
    const started = /^(\d+) +(\w+)\((.*)$/.exec(line);
    if (!started) return;
    const [, pid = '', name = '', args = ''] = started;
    const paths = [...args.matchAll(/<([^>]+)>|"([^"]+)"/g)].map((match) => match[1] ?? match[2] ?? '');
    const call = { name, paths, at: index, done: args.includes('<unfinished ...>') ? Number.POSITIVE_INFINITY : index };
    if (args.includes('<unfinished ...>')) pending.set(`${pid} ${name}`, call);
    calls.push(call);
  });
  return calls;
}

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
