import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectQemu, parseAccelerators, parseMachineAlias, parseQemuVersion } from '../../../adapters/qemu/binary.js';
import { useTempDirs } from '../../helpers/temp.js';

describe('parsing QEMU output', () => {
  it('reads the version', () => {
    expect(parseQemuVersion('QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright')).toMatchObject({ major: 10, minor: 0, micro: 2 });
    expect(parseQemuVersion('something else')).toBeUndefined();
  });

  it('resolves the q35 alias to the versioned type', () => {
    const help =
      'pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-10.0)\nq35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-10.0)\npc-q35-9.2           Standard PC';
    expect(parseMachineAlias(help, 'q35')).toBe('pc-q35-10.0');
    expect(parseMachineAlias(help, 'pc')).toBe('pc-i440fx-10.0');
    expect(parseMachineAlias(help, 'microvm')).toBeUndefined();
  });

  it('lists accelerators', () => {
    expect(parseAccelerators('Accelerators supported in QEMU binary:\ntcg\nkvm\n')).toEqual(['tcg', 'kvm']);
  });
});

describe('inspectQemu', () => {
  const temp = useTempDirs();

  it('finds the installed QEMU and its versioned q35 type', async () => {
    const info = await inspectQemu();
    expect(info.version.major).toBeGreaterThanOrEqual(9);
    expect(info.machineType).toMatch(/^pc-q35-\d+\.\d+$/);
    expect(info.accelerators).toContain('tcg');
  });

  it('says how to install QEMU when it is missing', async () => {
    await expect(inspectQemu('/nonexistent/qemu-system-x86_64')).rejects.toMatchObject({
      code: 'E_QEMU_MISSING',
      hint: expect.stringContaining('bookworm-backports'),
    });
  });

  // An old QEMU cannot be installed beside the new one here: a script stands in for 7.2.
  it('refuses a QEMU older than 9.0 and says how to get a newer one', async () => {
    const fake = join(await temp(), 'qemu-7.2');
    await writeFile(fake, '#!/bin/sh\necho "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u13)"\n');
    await chmod(fake, 0o755);
    await expect(inspectQemu(fake)).rejects.toMatchObject({
      code: 'E_QEMU_OLD',
      message: expect.stringContaining('7.2.15'),
      hint: expect.stringContaining('bookworm-backports'),
    });
  });
});
