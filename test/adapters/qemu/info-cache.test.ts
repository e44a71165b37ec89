import { chmod, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectQemuCached } from '../../../adapters/qemu/binary.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

describe('inspectQemuCached', () => {
  it('asks QEMU once per binary file, and again when the binary changes', async () => {
    const dir = await temp();
    const calls = join(dir, 'calls');
    const fake = join(dir, 'qemu-system-x86_64');
    await writeFile(
      fake,
      [
        '#!/bin/sh',
        `echo "$*" >> ${calls}`,
        'case "$*" in',
        '  --version) echo "QEMU emulator version 10.0.2 (fake)" ;;',
        '  "-machine help") echo "q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-10.0)" ;;',
        '  "-accel help") printf "Accelerators supported in QEMU binary:\\ntcg\\n" ;;',
        'esac',
      ].join('\n') + '\n',
    );
    await chmod(fake, 0o755);
    const cache = join(dir, 'qemu-info.json');
    const first = await inspectQemuCached(cache, fake);
    const second = await inspectQemuCached(cache, fake);
    expect(second).toEqual(first);
    expect(first.machineType).toBe('pc-q35-10.0');
    expect((await readFile(calls, 'utf8')).trim().split('\n')).toHaveLength(3);
    await utimes(fake, new Date(), new Date(Date.now() + 5_000));
    await inspectQemuCached(cache, fake);
    expect((await readFile(calls, 'utf8')).trim().split('\n')).toHaveLength(6);
  });
});
