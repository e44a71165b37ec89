import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { prepareBootFiles } from '../../../adapters/guest/boot-files.js';
import { fileExists } from '../../../adapters/support/file-exists.js';
import { readIso } from '../../helpers/iso-reader.js';
import { useTempDirs } from '../../helpers/temp.js';

const tempDir = useTempDirs();

/** A user's disk with cloud-init files, in a temp folder. */
async function userImage(userData: string, metaData?: string) {
  const dir = await tempDir();
  const disk = join(dir, 'cloud.qcow2');
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  await writeFile(join(dir, 'user-data'), userData);
  if (metaData) await writeFile(join(dir, 'meta-data'), metaData);
  const source = {
    kind: 'disk' as const,
    path: disk,
    format: 'qcow2' as const,
    kernel: undefined,
    initrd: undefined,
    append: undefined,
    userData: join(dir, 'user-data'),
    metaData: metaData ? join(dir, 'meta-data') : undefined,
  };
  return { dir, disk, source, options: { imagesDir: join(dir, 'images'), overlay: join(dir, 'overlay.qcow2') } };
}

describe('prepareBootFiles for a user image with cloud-init files', () => {
  it('writes a cidata seed with the files as given, named by their content, the same on every start', async () => {
    const { disk, source, options } = await userImage('#cloud-config\nruncmd: [[touch, /ok]]\n', 'instance-id: mine\n');
    const first = await prepareBootFiles(source, options);
    expect(first.disk).toEqual({ path: options.overlay, format: 'qcow2' });
    // Named, not made: the cold boot makes it over the image, a resume over its snapshot's disk.
    expect(first.overlayBase).toEqual({ path: disk, format: 'qcow2' });
    expect(await fileExists(options.overlay)).toBe(false);
    expect(first.seed).toMatch(/images\/seed-[0-9a-f]{16}\.iso$/);
    const iso = readIso(await readFile(first.seed as string));
    expect(iso.jolietLabel).toBe('cidata');
    expect(Object.fromEntries(iso.joliet.map((entry) => [entry.name, entry.data.toString()]))).toEqual({
      'meta-data': 'instance-id: mine\n',
      'user-data': '#cloud-config\nruncmd: [[touch, /ok]]\n',
    });
    const again = await prepareBootFiles(source, options);
    expect(again.seed).toBe(first.seed);
    expect(await readdir(options.imagesDir)).toEqual([first.seed?.split('/').at(-1)]);
  });

  it('makes an instance id from the user-data when no meta-data is given: new user-data, new seed and id', async () => {
    const { source, options } = await userImage('#cloud-config\n');
    const seedA = (await prepareBootFiles(source, options)).seed as string;
    const metaA = readIso(await readFile(seedA))
      .joliet.find((entry) => entry.name === 'meta-data')
      ?.data.toString();
    expect(metaA).toMatch(/^instance-id: warmvm-[0-9a-f]{16}\n/);
    await writeFile(source.userData, '#cloud-config\nhostname: other\n');
    const seedB = (await prepareBootFiles(source, options)).seed as string;
    expect(seedB).not.toBe(seedA);
    const metaB = readIso(await readFile(seedB))
      .joliet.find((entry) => entry.name === 'meta-data')
      ?.data.toString();
    expect(metaB).not.toBe(metaA);
  });

  it('names the missing user-data file and the config field', async () => {
    const { source, options } = await userImage('#cloud-config\n');
    await expect(prepareBootFiles({ ...source, userData: '/nonexistent/user-data' }, options)).rejects.toThrow(/image\.userData \/nonexistent\/user-data does not exist/);
  });
});
