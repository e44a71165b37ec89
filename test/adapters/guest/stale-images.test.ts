import { execa } from 'execa';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { homePaths } from '../../../adapters/instance/paths.js';
import { readBackingFile } from '../../../adapters/qemu/qcow2-header.js';
import { removeStaleImages } from '../../../adapters/guest/stale-images.js';

let home: string;

async function qcow2(path: string, backing?: string): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true });
  const args = backing === undefined ? ['create', '-q', '-f', 'qcow2', path, '1M'] : ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', backing, path];
  // A relative backing name is resolved from the new image's folder, as QEMU opens it later.
  await execa('qemu-img', args, { cwd: join(path, '..') });
  return path;
}

/** QEMU's own reading of the same header (it keeps "b/c/../../images" as is; same file). */
async function qemuBacking(path: string): Promise<string | undefined> {
  const { stdout } = await execa('qemu-img', ['info', '--output=json', path]);
  const name = (JSON.parse(stdout) as { 'full-backing-filename'?: string })['full-backing-filename'];
  return name === undefined ? undefined : resolve(name);
}

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'warmvm-stale-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('readBackingFile', () => {
  it('reads what qemu-img wrote: an absolute name, a relative one resolved from the image folder, none', async () => {
    const base = await qcow2(join(home, 'images', 'base.qcow2'));
    const absolute = await qcow2(join(home, 'a', 'over.qcow2'), base);
    const relative = await qcow2(join(home, 'b', 'c', 'over.qcow2'), '../../images/base.qcow2');
    for (const path of [base, absolute, relative]) expect(await readBackingFile(path)).toBe(await qemuBacking(path));
    expect(await readBackingFile(absolute)).toBe(base);
    expect(await readBackingFile(relative)).toBe(base);
    expect(await readBackingFile(base)).toBeUndefined();
  });

  it('answers undefined for a file that is not qcow2', async () => {
    const raw = join(home, 'disk.raw');
    await writeFile(raw, Buffer.alloc(4096));
    expect(await readBackingFile(raw)).toBeUndefined();
    const short = join(home, 'short');
    await writeFile(short, 'QFI');
    expect(await readBackingFile(short)).toBeUndefined();
  });
});

describe('removeStaleImages', () => {
  it('removes old image folders nothing backs onto, keeps those a snapshot or instance still uses, and leaves the rest alone', async () => {
    const { images, instances, snapshots } = homePaths(home);
    await qcow2(join(images, 'debian-new', 'disk.qcow2'));
    await qcow2(join(images, 'debian-unused', 'disk.qcow2'));
    const usedBySnapshot = await qcow2(join(images, 'debian-snap', 'disk.qcow2'));
    const usedByInstance = await qcow2(join(images, 'debian-inst', 'disk.qcow2'));
    const usedBySetAside = await qcow2(join(images, 'debian-aside', 'disk.qcow2'));
    await qcow2(join(images, 'demo-old', 'disk.qcow2'));
    await writeFile(join(images, 'debian-provision-failed.serial.log'), 'kept for a person to read');
    // A resume's chain: instance overlay → frozen snapshot disk → the image.
    const frozen = await qcow2(join(snapshots, 'deb', 'disk.qcow2'), usedBySnapshot);
    await qcow2(join(instances, 'deb', 'disk.qcow2'), frozen);
    await qcow2(join(instances, 'mine', 'disk.qcow2'), usedByInstance);
    await qcow2(join(snapshots, 'old.set-aside-2026-11-23T16-25-52-455Z', 'disk.qcow2'), usedBySetAside);

    const result = await removeStaleImages(home, 'debian-', 'debian-new');

    expect(result.removed).toEqual(['debian-unused']);
    expect(result.kept).toEqual(
      expect.arrayContaining([
        { image: 'debian-snap', usedBy: frozen, instance: 'deb' },
        { image: 'debian-inst', usedBy: join(instances, 'mine', 'disk.qcow2'), instance: 'mine' },
        { image: 'debian-aside', usedBy: join(snapshots, 'old.set-aside-2026-11-23T16-25-52-455Z', 'disk.qcow2'), instance: 'old' },
      ]),
    );
    expect(result.kept).toHaveLength(3);
    expect((await readdir(images)).sort()).toEqual(['debian-aside', 'debian-inst', 'debian-new', 'debian-provision-failed.serial.log', 'debian-snap', 'demo-old']);
  });

  it('does nothing in a home with no other images', async () => {
    await qcow2(join(homePaths(home).images, 'debian-new', 'disk.qcow2'));
    expect(await removeStaleImages(home, 'debian-', 'debian-new')).toEqual({ removed: [], kept: [] });
  });
});
