import type { SnapshotManifest } from '../../adapters/snapshot/manifest.js';
import { STATE_RAW, STATE_ZST } from '../../adapters/snapshot/store.js';

/** A well-formed manifest of a small TCG capture (256 MB, one vCPU, no disk), with `overrides` in place of its fields. */
export function manifestFixture(overrides: Partial<SnapshotManifest> = {}): SnapshotManifest {
  return {
    format: 1,
    createdAt: '2026-11-22T00:00:00.000Z',
    instance: 'default',
    qemuVersion: '10.0.2',
    machineType: 'pc-q35-10.0',
    accel: 'tcg',
    cpuModel: 'qemu64',
    cpus: 1,
    memoryMb: 256,
    argv: ['-machine', 'pc-q35-10.0'],
    specHash: 'abc',
    forwards: [{ guest: 8080, host: 40000 }],
    files: { state: { name: STATE_RAW, apparentBytes: 1, dataBytes: 1, sha256: 'x' }, stateZst: { name: STATE_ZST, bytes: 1, sha256: 'x' }, disk: undefined },
    ...overrides,
  };
}
