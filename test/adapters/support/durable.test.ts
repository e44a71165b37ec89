import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { syncDir, syncFile, writeFileDurably } from '../../../adapters/support/durable.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

describe('writeFileDurably', () => {
  it('replaces a file whole, with its mode, and leaves no temp file beside it', async () => {
    const dir = await temp();
    const file = join(dir, 'manifest.json');
    await writeFileDurably(file, 'one');
    await writeFileDurably(file, 'two', 0o600);
    expect(await readFile(file, 'utf8')).toBe('two');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['manifest.json']);
  });

  it('says which file it could not write', async () => {
    const dir = await temp();
    await expect(writeFileDurably(join(dir, 'missing', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(syncFile(join(dir, 'nothing'))).rejects.toMatchObject({ code: 'ENOENT' });
    await syncDir(dir);
  });
});
