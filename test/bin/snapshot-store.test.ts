import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Output } from '../../bin/output.js';
import { snapshotLsCommand, snapshotPruneCommand, snapshotRmCommand } from '../../bin/commands/snapshot-store.js';
import { bytesOnDisk } from '../../adapters/snapshot/store.js';
import { cli } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';
import { writeInstance, writeSnapshot } from '../adapters/vm/home-fixture.js';
import { SILENT_PROGRESS } from '../../shapes/progress.js';

// `warmvm snapshot ls | rm | prune`, called in-process on a real temp home with hand-made
// snapshot folders; a running instance is a live process whose command line names its QMP
// socket (what control.ts takes for its QEMU), a held capture lock one naming a live pid.
const temp = useTempDirs();
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

interface Captured {
  output: Output;
  value(): unknown;
  text(): string;
  progress: string[];
}

function capture(json = false): Captured {
  let value: unknown;
  let text = '';
  const progress: string[] = [];
  return {
    output: {
      json,
      progress: { ...SILENT_PROGRESS, line: (line) => progress.push(line) },
      result: (result, human) => {
        value = result;
        text = human;
      },
      error: () => undefined,
    },
    value: () => value,
    text: () => text,
    progress,
  };
}

/** A live process standing in for QEMU: its argv names the instance's QMP socket. */
function liveProcess(argv: string[] = []): number {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)', ...argv], { stdio: 'ignore' });
  children.push(child);
  if (child.pid === undefined) throw new Error('could not start a stand-in process');
  return child.pid;
}

/** An instance that `warmvm list` sees running, resumed from the snapshot `key`. */
async function runningFrom(home: string, name: string, key: string): Promise<void> {
  const dir = await writeInstance(home, name, { state: { snapshot: key }, snapshotKey: key });
  await writeFile(join(dir, 'qemu.pid'), `${liveProcess([join(dir, 'qmp.sock')])}\n`);
}

/** The capture lock of `key` held by a live process other than this one (this one's own would be taken over). */
async function holdCaptureLock(home: string, key: string): Promise<number> {
  const pid = liveProcess();
  await mkdir(join(home, 'snapshots'), { recursive: true });
  await writeFile(join(home, 'snapshots', `.lock-${key}`), `${pid}\n`);
  return pid;
}

function deadPid(): number {
  const pid = spawnSync('true').pid;
  if (pid === undefined) throw new Error('could not run true');
  return pid;
}

/** A set-aside version as setAside leaves it: the snapshot's files and a reason.txt. */
async function writeSetAside(home: string, key: string, stamp: string, reason: string | undefined): Promise<string> {
  const name = `${key}.set-aside-${stamp}`;
  const paths = await writeSnapshot(home, name);
  if (reason !== undefined) await writeFile(join(paths.dir, 'reason.txt'), `${reason}\n`);
  return name;
}

async function storeEntries(home: string): Promise<string[]> {
  return (await readdir(join(home, 'snapshots')).catch(() => [] as string[])).sort();
}

type Row = Record<string, unknown> & { key: string; setAside: Record<string, unknown>[] };
type Pruned = { dryRun: boolean; keep: number; removed: Record<string, unknown>[]; kept: Record<string, unknown>[]; bytesFreed: number };

async function prune(home: string, options: { keep?: number; dryRun?: boolean; keepBlobs?: boolean } = {}): Promise<Pruned & { text: string }> {
  const out = capture(true);
  expect(await snapshotPruneCommand({ keep: options.keep ?? 1, dryRun: options.dryRun ?? false, keepBlobs: options.keepBlobs, home, output: out.output })).toBe(0);
  return { ...(out.value() as Pruned), text: out.text() };
}

describe('warmvm snapshot ls', () => {
  it('gives one object per snapshot with stable fields, null for what is unknown, its users and set-aside versions', async () => {
    const home = await temp();
    const k1 = await writeSnapshot(home, 'k1', { capturedBy: 'web', memoryMb: 512, createdAt: '2026-11-23T00:00:00.000Z' });
    const broken = await writeSnapshot(home, 'k2');
    await writeFile(broken.manifest, '{');
    await writeSetAside(home, 'k1', '2026-11-22T10-20-30-400Z', "the snapshot's QEMU version is 9.2.0, this host's is 10.0.2\nsecond line");
    await runningFrom(home, 'web-1', 'k1');
    await writeInstance(home, 'stopped', { pid: deadPid(), state: { snapshot: 'k1' } });
    const pid = await holdCaptureLock(home, 'k2');
    const out = capture(true);
    expect(await snapshotLsCommand({ all: false, home, output: out.output })).toBe(0);
    const rows = out.value() as Row[];
    expect(rows).toEqual([
      {
        key: 'k1',
        current: true,
        dir: k1.dir,
        problem: null,
        capturedBy: 'web',
        createdAt: '2026-11-23T00:00:00.000Z',
        memoryMb: 512,
        qemuVersion: '10.0.2',
        machineType: 'pc-q35-10.0',
        accel: 'tcg',
        cpuModel: 'qemu64',
        bytesOnDisk: await bytesOnDisk(k1.dir),
        usedBy: ['web-1'],
        capturingPid: null,
        setAside: [
          {
            name: 'k1.set-aside-2026-11-22T10-20-30-400Z',
            dir: join(home, 'snapshots', 'k1.set-aside-2026-11-22T10-20-30-400Z'),
            setAsideAt: '2026-11-22T10:20:30.400Z',
            reason: "the snapshot's QEMU version is 9.2.0, this host's is 10.0.2",
            bytesOnDisk: expect.any(Number),
          },
        ],
      },
      expect.objectContaining({ key: 'k2', current: true, capturedBy: null, createdAt: null, machineType: null, usedBy: [], capturingPid: pid, setAside: [] }),
    ]);
    expect(rows[1]?.problem).toContain('manifest.json cannot be read');
    expect(Object.keys(rows[1] as Row)).toEqual(Object.keys(rows[0] as Row));
    expect(rows[0]?.bytesOnDisk).toBeGreaterThan(0);
  });

  it('prints a table with the set-aside versions, a capture in progress and problems under their key', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1', { capturedBy: 'web', memoryMb: 256 });
    await writeSetAside(home, 'k1', '2026-11-22T10-20-30-400Z', 'its guest failed after 2 resumes in a row (rotation or health)');
    await runningFrom(home, 'web-1', 'k1');
    await runningFrom(home, 'web-2', 'k1');
    const pid = await holdCaptureLock(home, 'k1');
    const out = capture();
    await snapshotLsCommand({ all: false, home, output: out.output });
    const lines = out.text().split('\n');
    expect(lines[0]).toMatch(/^KEY +CAPTURED BY +CREATED +SIZE +MEMORY +QEMU +MACHINE +ACCEL +CPU +USED BY$/);
    expect(lines[1]).toMatch(/^k1 +web +2026-11-22T00:00:00\.000Z +[\d.]+ [KM]B +256 MB +10\.0\.2 +pc-q35-10\.0 +tcg +qemu64 +web-1, web-2$/);
    expect(lines.slice(2)).toEqual([
      `  capture in progress: pid ${pid} holds its capture lock`,
      expect.stringMatching(/^ {2}set aside 2026-11-22T10:20:30\.400Z \([\d.]+ [KM]B\): its guest failed after 2 resumes in a row \(rotation or health\)$/),
      expect.stringMatching(/^1 snapshot\(s\), 1 set-aside version\(s\); [\d.]+ [KM]B on disk$/),
    ]);
  });

  it('lists the keys that only have set-aside versions with --all, and only counts them without', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k2');
    await writeSetAside(home, 'k1', '2026-11-22T10-20-30-400Z', undefined);
    const out = capture();
    await snapshotLsCommand({ all: false, home, output: out.output });
    expect(out.text()).not.toContain('\nk1 ');
    expect(out.text().split('\n').at(-1)).toMatch(
      /^\(1 set-aside version\(s\) of 1 key\(s\) with no current snapshot, [\d.]+ [KM]B: --all lists them; "warmvm snapshot prune" removes them\)$/,
    );
    const json = capture(true);
    await snapshotLsCommand({ all: false, home, output: json.output });
    expect((json.value() as Row[]).map((row) => row.key)).toEqual(['k2']);
    const all = capture(true);
    await snapshotLsCommand({ all: true, home, output: all.output });
    const rows = all.value() as Row[];
    expect(rows.map((row) => [row.key, row.current, row.dir, row.bytesOnDisk, row.setAside.map((version) => version.reason)])).toEqual([
      ['k1', false, null, 0, [null]],
      ['k2', true, join(home, 'snapshots', 'k2'), rows[1]?.bytesOnDisk, []],
    ]);
    const text = capture();
    await snapshotLsCommand({ all: true, home, output: text.output });
    expect(text.text()).toContain('\n  no current snapshot: only set-aside versions\n  set aside 2026-11-22T10:20:30.400Z (');
    expect(text.text()).toContain('): no reason.txt');
  });

  it('says so when the store is empty, and --json gives an empty array', async () => {
    const home = await temp();
    const out = capture();
    await snapshotLsCommand({ all: false, home, output: out.output });
    expect(out.text()).toBe(`no snapshots in ${join(home, 'snapshots')}`);
    const json = capture(true);
    await snapshotLsCommand({ all: true, home, output: json.output });
    expect(json.value()).toEqual([]);
  });
});

describe('warmvm snapshot rm', () => {
  it('removes each snapshot with its set-aside versions and leaves the others; --json names what went and the bytes', async () => {
    const home = await temp();
    const k1 = await writeSnapshot(home, 'k1');
    const aside = await writeSetAside(home, 'k1', '2026-11-22T10-20-30-400Z', 'damaged');
    await writeSnapshot(home, 'k2');
    await writeSnapshot(home, 'k3');
    await writeSetAside(home, 'k3x', '2026-11-22T10-20-30-400Z', 'a key that only starts like k3');
    const expected = (await bytesOnDisk(k1.dir)) + (await bytesOnDisk(join(home, 'snapshots', aside))) + (await bytesOnDisk(join(home, 'snapshots', 'k3')));
    const out = capture(true);
    expect(await snapshotRmCommand({ keys: ['k1', 'k3', 'k1'], force: false, home, output: out.output })).toBe(0);
    expect(out.value()).toEqual({
      removed: [
        { key: 'k1', dirs: [k1.dir, join(home, 'snapshots', aside)], bytesFreed: expect.any(Number), usedBy: [] },
        { key: 'k3', dirs: [join(home, 'snapshots', 'k3')], bytesFreed: expect.any(Number), usedBy: [] },
      ],
      bytesFreed: expected,
    });
    expect(await storeEntries(home)).toEqual(['k2', 'k3x.set-aside-2026-11-22T10-20-30-400Z']);
    const text = capture();
    await snapshotRmCommand({ keys: ['k3x'], force: false, home, output: text.output });
    expect(text.text()).toMatch(/^removed k3x \(1 folder\(s\), [\d.]+ [KM]B\)\nfreed [\d.]+ [KM]B$/);
    expect(await storeEntries(home)).toEqual(['k2']);
  });

  it('refuses, removing nothing, a snapshot that a running instance uses, naming the instances and the fix; --force removes it', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    await writeSnapshot(home, 'k2');
    await runningFrom(home, 'web-1', 'k1');
    await runningFrom(home, 'web-2', 'k1');
    const refused = snapshotRmCommand({ keys: ['k2', 'k1'], force: false, home, output: capture().output });
    await expect(refused).rejects.toMatchObject({
      code: 'E_SNAPSHOT_IN_USE',
      message: 'snapshot k1 is used by running web-1, web-2; nothing was removed',
      hint: expect.stringMatching(
        /^stop them first \("warmvm stop --name web-1", "warmvm stop --name web-2"\), or remove it anyway with --force: running clones keep their memory/,
      ),
    });
    expect(await storeEntries(home)).toEqual(['k1', 'k2']);
    const forced = capture();
    expect(await snapshotRmCommand({ keys: ['k1'], force: true, home, output: forced.output })).toBe(0);
    expect(forced.text()).toContain('\n  still mapped by running web-1, web-2: its memory is freed when they stop; their next start cold-boots and captures anew\n');
    expect(await storeEntries(home)).toEqual(['k2']);
  });

  it('refuses a snapshot whose capture lock a live process holds, and takes over one a dead process left', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    const pid = await holdCaptureLock(home, 'k1');
    await expect(snapshotRmCommand({ keys: ['k1'], force: true, home, output: capture().output })).rejects.toMatchObject({
      code: 'E_CAPTURE_BUSY',
      message: `a capture of snapshot k1 is in progress (pid ${pid} holds its capture lock)`,
    });
    expect(await storeEntries(home)).toEqual(['.lock-k1', 'k1']);
    // Nothing is removed when one of the keys is being captured.
    await writeSnapshot(home, 'k2');
    await expect(snapshotRmCommand({ keys: ['k2', 'k1'], force: false, home, output: capture().output })).rejects.toMatchObject({ code: 'E_CAPTURE_BUSY' });
    expect(await storeEntries(home)).toEqual(['.lock-k1', 'k1', 'k2']);
    await rm(join(home, 'snapshots', 'k2'), { recursive: true });
    await writeFile(join(home, 'snapshots', '.lock-k1'), `${deadPid()}\n`);
    expect(await snapshotRmCommand({ keys: ['k1'], force: false, home, output: capture().output })).toBe(0);
    // Removed under the lock, which it let go of after.
    expect(await storeEntries(home)).toEqual([]);
  });

  it('refuses an unknown key, saying that "warmvm snapshot ls" lists them, and a key that is a path', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    await expect(snapshotRmCommand({ keys: ['k1', 'nope'], force: false, home, output: capture().output })).rejects.toMatchObject({
      code: 'E_SNAPSHOT_MISSING',
      message: `no snapshot "nope" in ${join(home, 'snapshots')}`,
      hint: expect.stringContaining('"warmvm snapshot ls" lists them'),
    });
    for (const key of ['../snapshots/k1', '..', '.', '.lock-k1', 'k1/', join(home, 'snapshots', 'k1'), '']) {
      await expect(snapshotRmCommand({ keys: [key], force: true, home, output: capture().output }), key).rejects.toMatchObject({
        code: 'E_SNAPSHOT_KEY',
        message: expect.stringContaining('not a path'),
      });
    }
    expect(await storeEntries(home)).toEqual(['k1']);
  });
});

describe('warmvm snapshot prune', () => {
  /** web captured three configs over time, db one; a set-aside version and leftovers of dead warmvms. */
  async function cluttered(home: string): Promise<void> {
    await writeSnapshot(home, 'web-old', { capturedBy: 'web', createdAt: '2026-11-20T00:00:00.000Z' });
    await writeSnapshot(home, 'web-mid', { capturedBy: 'web', createdAt: '2026-11-21T00:00:00.000Z' });
    await writeSnapshot(home, 'web-new', { capturedBy: 'web', createdAt: '2026-11-22T00:00:00.000Z' });
    await writeSnapshot(home, 'db-only', { capturedBy: 'db', createdAt: '2026-11-01T00:00:00.000Z' });
    await writeSetAside(home, 'web-new', '2026-11-22T10-20-30-400Z', 'damaged');
    await writeSnapshot(home, `web-new.replaced-${deadPid()}-1`);
    await writeSnapshot(home, `.capture-${deadPid()}-2`);
  }

  it('keeps the newest snapshot of each capturing instance and removes the rest, every set-aside version and dead leftovers', async () => {
    const home = await temp();
    await cluttered(home);
    const before = await storeEntries(home);
    const bytes = new Map<string, number>();
    for (const name of before) bytes.set(name, await bytesOnDisk(join(home, 'snapshots', name)));
    const result = await prune(home);
    const removedNames = result.removed.map((entry) => entry.name);
    expect(removedNames).toEqual(['web-mid', 'web-old', 'web-new.set-aside-2026-11-22T10-20-30-400Z', before[0], before.find((name) => name.includes('.replaced-'))]);
    expect(result.kept.map((entry) => [entry.name, entry.why])).toEqual([
      ['db-only', 'the newest captured by "db"'],
      ['web-new', 'the newest captured by "web"'],
    ]);
    expect(result.removed[0]).toEqual({
      kind: 'snapshot',
      key: 'web-mid',
      name: 'web-mid',
      dir: join(home, 'snapshots', 'web-mid'),
      capturedBy: 'web',
      createdAt: '2026-11-21T00:00:00.000Z',
      bytesOnDisk: bytes.get('web-mid'),
      usedBy: [],
      why: 'older than the newest 1 captured by "web"',
    });
    expect(result.removed.map((entry) => entry.kind)).toEqual(['snapshot', 'snapshot', 'set-aside', 'leftover', 'leftover']);
    expect(result.bytesFreed).toBe(removedNames.reduce<number>((total, name) => total + (bytes.get(name as string) ?? 0), 0));
    expect(result.bytesFreed).toBeGreaterThan(0);
    expect(await storeEntries(home)).toEqual(['db-only', 'web-new']);
    // Nothing left to do the second time.
    const again = await prune(home);
    expect(again.removed).toEqual([]);
    expect(again.text.split('\n')[0]).toBe('nothing to prune');
  });

  it('keeps the newest N of each group with --keep N, and every one no running instance uses with --keep 0 gone', async () => {
    const home = await temp();
    await cluttered(home);
    const two = await prune(home, { keep: 2 });
    expect(two.removed.filter((entry) => entry.kind === 'snapshot').map((entry) => entry.name)).toEqual(['web-old']);
    expect(two.kept.map((entry) => [entry.name, entry.why])).toEqual([
      ['db-only', 'the newest captured by "db"'],
      ['web-new', 'the newest captured by "web"'],
      ['web-mid', 'one of the newest 2 captured by "web"'],
    ]);
    await runningFrom(home, 'db', 'db-only');
    const none = await prune(home, { keep: 0 });
    expect(none.removed.map((entry) => entry.name)).toEqual(['web-new', 'web-mid']);
    expect(none.kept.map((entry) => [entry.name, entry.why])).toEqual([['db-only', 'used by running db']]);
    expect(await storeEntries(home)).toEqual(['db-only']);
  });

  it('never removes a snapshot that a running instance uses: kept, with who uses it', async () => {
    const home = await temp();
    await cluttered(home);
    // A clone still runs from web's old config.
    await runningFrom(home, 'clone', 'web-old');
    const dry = await prune(home, { dryRun: true });
    expect(dry.kept.map((entry) => [entry.name, entry.why])).toContainEqual(['web-old', 'used by running clone']);
    expect(dry.removed.map((entry) => entry.name)).not.toContain('web-old');
    const result = await prune(home);
    expect(result.kept.map((entry) => [entry.name, entry.why, entry.usedBy])).toEqual([
      ['db-only', 'the newest captured by "db"', []],
      ['web-new', 'the newest captured by "web"', []],
      ['web-old', 'used by running clone', ['clone']],
    ]);
    expect(await storeEntries(home)).toContain('web-old');
    expect(await storeEntries(home)).not.toContain('web-mid');
    expect(result.text).toContain('\nkept web-old (snapshot captured by "web" at 2026-11-20T00:00:00.000Z, ');
    expect(result.text).toContain('): used by running clone\n');
  });

  it('keeps everything of a config whose capture lock a live process holds', async () => {
    const home = await temp();
    await cluttered(home);
    const pid = await holdCaptureLock(home, 'web-old');
    const busy = await holdCaptureLock(home, 'web-new');
    const why = (holder: number): string => `a capture is in progress (pid ${holder} holds its capture lock)`;
    const dry = await prune(home, { dryRun: true });
    expect(dry.kept.map((entry) => [entry.name, entry.why])).toContainEqual(['web-old', why(pid)]);
    expect(dry.removed.map((entry) => entry.name)).toEqual(['web-mid', expect.stringMatching(/^\.capture-/)]);
    const result = await prune(home);
    expect(result.kept.map((entry) => [entry.name, entry.why])).toEqual([
      ['db-only', 'the newest captured by "db"'],
      ['web-new', 'the newest captured by "web"'],
      ['web-old', why(pid)],
      ['web-new.set-aside-2026-11-22T10-20-30-400Z', why(busy)],
      [expect.stringMatching(/^web-new\.replaced-/), why(busy)],
    ]);
    expect(result.removed.map((entry) => entry.name)).toEqual(['web-mid', expect.stringMatching(/^\.capture-/)]);
  });

  it('with --dry-run says what it would remove and the bytes, and removes nothing', async () => {
    const home = await temp();
    await cluttered(home);
    const before = await storeEntries(home);
    const dry = await prune(home, { dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.removed.map((entry) => entry.name)).toHaveLength(5);
    expect(dry.bytesFreed).toBeGreaterThan(0);
    expect(await storeEntries(home)).toEqual(before);
    const lines = dry.text.split('\n');
    expect(lines[0]).toMatch(/^would remove web-mid \(snapshot captured by "web" at 2026-11-21T00:00:00\.000Z, [\d.]+ [KM]B\): older than the newest 1 captured by "web"$/);
    expect(lines.at(-1)).toMatch(/^would free [\d.]+ [KM]B \(--dry-run: nothing was removed\)$/);
    const real = await prune(home);
    expect(real.bytesFreed).toBe(dry.bytesFreed);
    expect(real.text.split('\n').at(-1)).toMatch(/^freed [\d.]+ [KM]B$/);
  });

  it('keeps a snapshot whose manifest cannot be read, a replaced folder that an interrupted commit must put back, and the folders of live warmvms', async () => {
    const home = await temp();
    const broken = await writeSnapshot(home, 'broken');
    await writeFile(broken.manifest, '{');
    // No `gone/`: its replaced folder is the snapshot itself, for the next start to put back.
    await writeSnapshot(home, `gone.replaced-${deadPid()}-1`);
    // A live warmvm is mid-commit.
    await writeSnapshot(home, 'live', { capturedBy: 'web' });
    await writeSnapshot(home, `live.replaced-${liveProcess()}-1`);
    // A live warmvm is capturing.
    await writeSnapshot(home, `.capture-${liveProcess()}-2`);
    const before = await storeEntries(home);
    const result = await prune(home);
    expect(result.removed).toEqual([]);
    expect(result.kept.map((entry) => entry.name)).toEqual(['broken', 'live']);
    expect(result.kept[0]?.why).toMatch(/^its manifest cannot be read \(manifest\.json cannot be read: .*\), so it is in no group; "warmvm snapshot rm broken" removes it$/);
    expect(await storeEntries(home)).toEqual(before);
  });
});

// The built CLI (npm test builds first): the commands as registered, their help and exit codes.
describe('warmvm snapshot prune: the transfer cache', () => {
  /** blobs/sha256/: two cached blobs, a half-downloaded one whose pull is alive, and the packed index. */
  async function writeCache(home: string): Promise<{ sha256: string; busy: string }> {
    const sha256 = join(home, 'blobs', 'sha256');
    await mkdir(join(home, 'blobs', 'packed'), { recursive: true });
    await mkdir(sha256, { recursive: true });
    await writeFile(join(sha256, 'a'.repeat(64)), Buffer.alloc(64 << 10, 1));
    await writeFile(join(sha256, 'b'.repeat(64)), Buffer.alloc(64 << 10, 2));
    const busy = 'c'.repeat(64);
    await writeFile(join(sha256, `${busy}.partial`), Buffer.alloc(8 << 10, 3));
    await writeFile(join(sha256, `${busy}.lock`), `${liveProcess()}\n`);
    await writeFile(join(home, 'blobs', 'packed', 'x.json'), '{}');
    return { sha256, busy };
  }

  it('empties it but for the blobs a live pull is downloading; --keep-blobs and --dry-run keep it', async () => {
    const home = await temp();
    const { sha256, busy } = await writeCache(home);
    const kept = await prune(home, { keepBlobs: true });
    expect(kept.kept).toEqual([expect.objectContaining({ kind: 'blob-cache', why: expect.stringContaining('--keep-blobs') })]);
    const dry = await prune(home, { dryRun: true });
    expect(dry.removed).toEqual([expect.objectContaining({ kind: 'blob-cache', why: expect.stringContaining('a pull is downloading now') })]);
    expect((await readdir(sha256)).length).toBe(4);
    const pruned = await prune(home);
    expect(pruned.removed).toEqual([expect.objectContaining({ kind: 'blob-cache', name: 'blobs' })]);
    expect(pruned.bytesFreed).toBeGreaterThanOrEqual(128 << 10);
    expect((await readdir(sha256)).sort()).toEqual([`${busy}.lock`, `${busy}.partial`]);
    expect(await readdir(join(home, 'blobs'))).toEqual(['sha256']);
  });
});

describe('warmvm snapshot ls | rm | prune as a command', () => {
  it('documents how prune groups the snapshots', async () => {
    const help = await cli(['snapshot', 'prune', '--help'], { WARMVM_HOME: await temp() });
    expect(help.exitCode).toBe(0);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('groups the snapshots by the instance that captured them');
    expect(help.stdout).toContain('--keep <n>');
    expect(help.stdout).toContain('--dry-run');
  });

  it('exits 1 on a key that is in use or unknown, with the error as JSON; 0 with ls --json an array', async () => {
    const home = await temp();
    await writeSnapshot(home, 'k1');
    await runningFrom(home, 'web-1', 'k1');
    const refused = await cli(['snapshot', 'rm', 'k1', '--json'], { WARMVM_HOME: home });
    expect(refused.exitCode).toBe(1);
    expect(refused.json).toMatchObject({ outcome: 'failed', error: { code: 'E_SNAPSHOT_IN_USE', hint: expect.stringContaining('"warmvm stop --name web-1"') } });
    const unknown = await cli(['snapshot', 'rm', 'nope'], { WARMVM_HOME: home });
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain('"warmvm snapshot ls" lists them');
    const ls = await cli(['snapshot', 'ls', '--json'], { WARMVM_HOME: home });
    expect(ls.exitCode).toBe(0);
    expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ key: 'k1', usedBy: ['web-1'] })]);
    const bad = await cli(['snapshot', 'prune', '--keep', 'x'], { WARMVM_HOME: home });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('--keep x is not a whole number');
  });
});
