import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { unmountUnder } from '../../../../adapters/guest/debian/rootfs.js';
import { useTempDirs } from '../../../helpers/temp.js';

const tempDir = useTempDirs();
const mountedUnder = async (dir: string) => (await readFile('/proc/self/mounts', 'utf8')).split('\n').filter((line) => line.split(' ')[1]?.startsWith(`${dir}/`));

// What a killed debootstrap leaves (proc and sys mounted in the target) must be unmounted before
// the build folder is removed. Mounting needs root, as the Debian build itself does.
describe.skipIf(process.getuid?.() !== 0)('unmountUnder', () => {
  it('unmounts nested mounts under the folder, deepest first, and nothing else', async () => {
    const dir = await tempDir();
    const outside = await tempDir();
    for (const point of [join(dir, 'rootfs/proc'), join(dir, 'rootfs/proc/inner'), join(outside, 'keep')]) await mkdir(point, { recursive: true });
    await execa('mount', ['-t', 'tmpfs', 'tmpfs', join(dir, 'rootfs/proc')]);
    await mkdir(join(dir, 'rootfs/proc/inner'));
    await execa('mount', ['-t', 'tmpfs', 'tmpfs', join(dir, 'rootfs/proc/inner')]);
    await execa('mount', ['-t', 'tmpfs', 'tmpfs', join(outside, 'keep')]);
    try {
      expect(await mountedUnder(dir)).toHaveLength(2);
      await unmountUnder(dir);
      expect(await mountedUnder(dir)).toEqual([]);
      expect(await mountedUnder(outside)).toHaveLength(1);
    } finally {
      await execa('umount', ['--lazy', join(outside, 'keep')], { reject: false });
    }
  });

  it('does nothing when nothing is mounted', async () => {
    await expect(unmountUnder(await tempDir())).resolves.toBeUndefined();
  });
});
