import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseAccelerator, type ProbeInput } from '../../../adapters/qemu/accel-probe.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

/** A stand-in QEMU: a hypervisor that works (prints the marker) or hangs (prints nothing). */
async function fakeQemu(dir: string, behaviour: 'boots' | 'hangs'): Promise<string> {
  const file = join(dir, `qemu-${behaviour}`);
  const body = behaviour === 'boots' ? 'echo "[    0.000000] Linux version 6.1.0-56-amd64"; exec sleep 30' : 'echo "decompressing"; exec sleep 30';
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

async function input(dir: string, overrides: Partial<ProbeInput>): Promise<ProbeInput> {
  const device = join(dir, 'kvm');
  await writeFile(device, '');
  return {
    choice: 'auto',
    qemuBinary: '/bin/false',
    qemuVersion: '10.0.2',
    machineType: 'pc-q35-10.0',
    accelerators: ['tcg', 'kvm'],
    kernel: async () => '/boot/vmlinuz',
    cacheFile: join(dir, 'accel.json'),
    boundMs: 1_500,
    platform: 'linux',
    kvmDevice: device,
    ...overrides,
  };
}

describe('chooseAccelerator', () => {
  it('tcg when asked, without probing', async () => {
    const verdict = await chooseAccelerator(await input(await temp(), { choice: 'tcg', kernel: () => Promise.reject(new Error('must not probe')) }));
    expect(verdict).toMatchObject({ accel: 'tcg', rejected: undefined });
  });

  it('tcg when QEMU or the host has no KVM, saying why', async () => {
    const dir = await temp();
    expect(await chooseAccelerator(await input(dir, { accelerators: ['tcg'] }))).toMatchObject({ accel: 'tcg', rejected: { reason: expect.stringContaining('no kvm support') } });
    expect(await chooseAccelerator(await input(dir, { kvmDevice: join(dir, 'missing') }))).toMatchObject({
      accel: 'tcg',
      rejected: { reason: expect.stringContaining('missing') },
    });
  });

  it('kvm only once a guest kernel was seen running under it', async () => {
    const dir = await temp();
    const verdict = await chooseAccelerator(await input(dir, { qemuBinary: await fakeQemu(dir, 'boots') }));
    expect(verdict).toMatchObject({ accel: 'kvm', cached: false });
  });

  it('a hypervisor that hangs costs the bound once, then tcg; the verdict is cached', async () => {
    const dir = await temp();
    const started = Date.now();
    const verdict = await chooseAccelerator(await input(dir, { qemuBinary: await fakeQemu(dir, 'hangs') }));
    expect(verdict).toMatchObject({ accel: 'tcg', rejected: { accel: 'kvm', reason: expect.stringContaining('no guest progress in 1500 ms') } });
    expect(Date.now() - started).toBeLessThan(10_000); // bounded, not a hang (the bound is 1.5 s)
    expect(JSON.parse(await readFile(join(dir, 'accel.json'), 'utf8'))).toMatchObject({ failure: expect.stringContaining('no guest progress') });
    const again = await chooseAccelerator(await input(dir, { qemuBinary: await fakeQemu(dir, 'hangs'), kernel: () => Promise.reject(new Error('must not probe')) }));
    expect(again).toMatchObject({ accel: 'tcg', cached: true });
  });

  it('an explicit kvm that cannot be proven is an error with the fix', async () => {
    const dir = await temp();
    await expect(chooseAccelerator(await input(dir, { choice: 'kvm', qemuBinary: await fakeQemu(dir, 'hangs') }))).rejects.toMatchObject({
      code: 'E_ACCEL',
      hint: expect.stringContaining('"tcg"'),
    });
  });
});
