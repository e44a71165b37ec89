import { SNAPSHOT_FORMAT, type SnapshotManifest } from '../../adapters/snapshot/manifest.js';
import { MEMORY_FILE, STATE_FILE } from '../../adapters/snapshot/store.js';

/** The device argv of the fixture: what a launch of the same config must come out as. */
export const FIXTURE_DEVICES = ['-machine', 'pc-q35-10.0,memory-backend=pc.ram', '-object', 'memory-backend-file,id=pc.ram,size=256M,mem-path=<memory>,share=on'];

/** A well-formed manifest of a small TCG capture (256 MB, one vCPU, no disk), with `overrides` in place of its fields. */
export function manifestFixture(overrides: Partial<SnapshotManifest> = {}): SnapshotManifest {
  return {
    format: SNAPSHOT_FORMAT,
    createdAt: '2026-11-22T00:00:00.000Z',
    capturedBy: 'default',
    qemuVersion: '10.0.2',
    machineType: 'pc-q35-10.0',
    accel: 'tcg',
    cpuModel: 'qemu64',
    cpus: 1,
    memoryMb: 256,
    deviceArgv: FIXTURE_DEVICES,
    specHash: 'abc',
    spec: {},
    files: {
      memory: { name: MEMORY_FILE, bytes: 1, dataBytes: 1, checksum: 'x' },
      state: { name: STATE_FILE, bytes: 1, checksum: 'x' },
      disk: undefined,
    },
    ...overrides,
  };
}
