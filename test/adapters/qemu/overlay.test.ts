import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createOverlay } from '../../../adapters/qemu/overlay.js';
import { readBackingFile } from '../../../adapters/qemu/qcow2-header.js';
import { useTempDirs } from '../../helpers/temp.js';

const tempDir = useTempDirs();

describe('createOverlay', () => {
  it('makes a qcow2 over the image, replacing an overlay over another one', async () => {
    const dir = await tempDir();
    const image = join(dir, 'image.raw');
    const snapshotDisk = join(dir, 'frozen.qcow2');
    const overlay = join(dir, 'overlay.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'raw', image, '8M']);
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', snapshotDisk, '8M']);
    await createOverlay({ qemuImg: 'qemu-img', base: snapshotDisk, format: 'qcow2', overlay });
    expect(await readBackingFile(overlay)).toBe(snapshotDisk);
    await createOverlay({ qemuImg: 'qemu-img', base: image, format: 'raw', overlay });
    expect(await readBackingFile(overlay)).toBe(image);
    const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', overlay])).stdout) as { format: string; 'backing-filename-format': string };
    expect(info).toMatchObject({ format: 'qcow2', 'backing-filename-format': 'raw' });
  });

  it('fails with E_OVERLAY, naming the image and quoting qemu-img, when the image is not what the config says', async () => {
    const dir = await tempDir();
    const notQcow2 = join(dir, 'disk.qcow2');
    await writeFile(notQcow2, 'not an image');
    const error = await createOverlay({ qemuImg: 'qemu-img', base: notQcow2, format: 'qcow2', overlay: join(dir, 'overlay.qcow2') }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_OVERLAY', message: expect.stringContaining(`cannot create a disk overlay over ${notQcow2}: qemu-img:`) });
    expect((error as Error).cause).toBeDefined();
  });

  it('names qemu-img missing in the hint', async () => {
    const dir = await tempDir();
    const error = await createOverlay({ qemuImg: join(dir, 'no-qemu-img'), base: join(dir, 'x.qcow2'), format: 'qcow2', overlay: join(dir, 'o.qcow2') }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toMatchObject({ code: 'E_OVERLAY', hint: expect.stringContaining('apt-get install qemu-utils') });
  });
});
