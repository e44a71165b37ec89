import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { settingsEnv, writeRuntimeDisk } from '../../../adapters/guest/runtime-disk.js';
import { readIso } from '../../helpers/iso-reader.js';
import { useTempDirs } from '../../helpers/temp.js';

const tempDir = useTempDirs();

describe('the runtime settings disk', () => {
  it('holds settings.env: sorted NAME=value lines with the instance name, that sh reads back exactly', async () => {
    const settings = { LOG_LEVEL: 'debug', GREETING: 'it\'s a "test" $HOME `x` \\ end' };
    const text = settingsEnv('box-1', settings);
    expect(text.split('\n')[0]).toMatch(/^GREETING=/);
    expect(text).toContain("WARMVM_INSTANCE='box-1'\n");
    // What the guest's shell (and systemd's EnvironmentFile=) make of the lines: the values as given.
    const file = join(await tempDir(), 'settings.env');
    await writeFile(file, text);
    const read = await execa('sh', ['-c', `. "$1"; printf '%s\\n' "$GREETING" "$LOG_LEVEL" "$WARMVM_INSTANCE"`, 'sh', file]);
    expect(read.stdout.split('\n')).toEqual([settings.GREETING, 'debug', 'box-1']);
  });

  it('is an ISO labelled warmvm-rt whose only file is settings.env', async () => {
    const path = join(await tempDir(), 'runtime.iso');
    await writeRuntimeDisk(path, 'box-1', { A: '1' });
    const iso = readIso(await readFile(path));
    expect(iso.jolietLabel).toBe('warmvm-rt');
    expect(iso.joliet.map((entry) => [entry.name, entry.data.toString()])).toEqual([['settings.env', "A='1'\nWARMVM_INSTANCE='box-1'\n"]]);
    const blkid = await execa('blkid', ['-p', '-o', 'export', path]);
    expect(blkid.stdout).toContain('LABEL=warmvm-rt');
  });
});
