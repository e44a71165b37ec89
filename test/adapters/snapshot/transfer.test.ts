import { describe, expect, it } from 'vitest';
import { WarmvmError } from '../../../adapters/support/errors.js';
import { mismatchError, type PortableHost, portableMismatch } from '../../../adapters/snapshot/transfer.js';
import { manifestFixture } from '../../helpers/manifest-fixture.js';

/** The fixture's capture: QEMU 10.0.2, pc-q35-10.0, under TCG. */
const manifest = manifestFixture();
const host: PortableHost = { qemuVersion: '10.0.2', machineType: 'pc-q35-10.0', accelerators: ['kvm', 'tcg'] };

describe('portableMismatch', () => {
  it('finds nothing when the host has the same QEMU and machine type and offers the accelerator', () => {
    expect(portableMismatch(manifest, host)).toBeUndefined();
    expect(portableMismatch(manifest, { ...host, accelerators: ['tcg'] })).toBeUndefined();
    expect(portableMismatch(manifestFixture({ accel: 'kvm' }), host)).toBeUndefined();
  });

  it('names both QEMU versions when they differ', () => {
    expect(portableMismatch(manifest, { ...host, qemuVersion: '9.2.0' })).toBe('it was captured with QEMU 10.0.2, this host has 9.2.0');
  });

  it('names both machine types when they differ', () => {
    expect(portableMismatch(manifest, { ...host, machineType: 'pc-q35-9.2' })).toBe("its machine type is pc-q35-10.0, this host's QEMU makes pc-q35-9.2");
  });

  it('names the accelerator captured under and the ones the host offers when it lacks it', () => {
    expect(portableMismatch(manifestFixture({ accel: 'kvm' }), { ...host, accelerators: ['tcg'] })).toBe(
      "it was captured under kvm, which this host's QEMU does not offer (it has tcg)",
    );
    expect(portableMismatch(manifest, { ...host, accelerators: ['kvm', 'hvf'] })).toBe("it was captured under tcg, which this host's QEMU does not offer (it has kvm, hvf)");
  });

  it('goes by the whole value: a version or machine type that only starts the same differs', () => {
    expect(portableMismatch(manifest, { ...host, qemuVersion: '10.0.20' })).toContain('QEMU 10.0.2, this host has 10.0.20');
    expect(portableMismatch(manifest, { ...host, machineType: 'pc-q35-10.0.1' })).toContain('pc-q35-10.0.1');
    expect(portableMismatch(manifest, { ...host, accelerators: ['tcg-thread'] })).toContain('does not offer');
  });

  it('names the QEMU version first when several differ', () => {
    expect(portableMismatch(manifestFixture({ accel: 'kvm' }), { qemuVersion: '9.2.0', machineType: 'pc-q35-9.2', accelerators: [] })).toBe(
      'it was captured with QEMU 10.0.2, this host has 9.2.0',
    );
    expect(portableMismatch(manifestFixture({ accel: 'kvm' }), { ...host, machineType: 'pc-q35-9.2', accelerators: [] })).toContain('machine type');
  });

  it('ignores what a host may differ in: the CPU model, the spec, the devices', () => {
    expect(portableMismatch(manifestFixture({ cpuModel: 'host', specHash: 'other', deviceArgv: [] }), host)).toBeUndefined();
  });
});

describe('mismatchError', () => {
  it('is an E_SNAPSHOT_MISMATCH naming where the snapshot is and why, with what to do instead', () => {
    const reason = portableMismatch(manifest, { ...host, qemuVersion: '9.2.0' }) ?? '';
    const error = mismatchError('registry.test/snap:1', reason);
    expect(error).toBeInstanceOf(WarmvmError);
    expect(error.code).toBe('E_SNAPSHOT_MISMATCH');
    expect(error.message).toBe('registry.test/snap:1 cannot be resumed on this host: it was captured with QEMU 10.0.2, this host has 9.2.0');
    expect(error.hint).toContain('capture on this host instead');
    expect(error.hint).toContain('same QEMU, machine type, accelerator');
  });
});
