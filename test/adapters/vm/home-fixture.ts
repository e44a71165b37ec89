import { chmod, mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InstanceState } from '../../../adapters/instance/state.js';
import { fileChecksum } from '../../../adapters/snapshot/checksum.js';
import { SNAPSHOT_FORMAT, type SnapshotManifest } from '../../../adapters/snapshot/manifest.js';
import { MEMORY_FILE, SNAPSHOT_FILE_MODE, STATE_FILE, snapshotPaths, type SnapshotPaths } from '../../../adapters/snapshot/store.js';
import { recordVerified } from '../../../adapters/snapshot/verify.js';

/** A fake warmvm home on real files: instances' state and published snapshots, no QEMU. */

/** Apparent size of a fixture's memory file: sparse, with data only in its second 4 MiB chunk. */
export const MEMORY_BYTES = 16 << 20;
/** Where the fixture's memory file holds data. */
export const MEMORY_DATA_OFFSET = (4 << 20) + 4096;

/**
 * A published snapshot `snapshots/<key>/` as a capture leaves it: a sparse mem.raw (mode 0444),
 * a state.raw and a format-2 manifest with their real checksums.
 */
export async function writeSnapshot(
  home: string,
  key: string,
  facts: Partial<Pick<SnapshotManifest, 'capturedBy' | 'memoryMb' | 'createdAt'>> = {},
  options: { sealed?: boolean } = {},
): Promise<SnapshotPaths> {
  const paths = snapshotPaths(join(home, 'snapshots'), key);
  await mkdir(paths.dir, { recursive: true });
  const memory = await open(paths.memory, 'w');
  try {
    await memory.truncate(MEMORY_BYTES);
    await memory.write(Buffer.alloc(64 << 10, 0xa5), 0, 64 << 10, MEMORY_DATA_OFFSET);
  } finally {
    await memory.close();
  }
  await chmod(paths.memory, SNAPSHOT_FILE_MODE);
  await writeFile(paths.state, Buffer.from(`device state of ${key}`));
  const memorySum = await fileChecksum(paths.memory);
  const stateSum = await fileChecksum(paths.state);
  const manifest: SnapshotManifest = {
    format: SNAPSHOT_FORMAT,
    createdAt: facts.createdAt ?? '2026-11-22T00:00:00.000Z',
    capturedBy: facts.capturedBy ?? 'default',
    qemuVersion: '10.0.2',
    machineType: 'pc-q35-10.0',
    accel: 'tcg',
    cpuModel: 'qemu64',
    cpus: 1,
    memoryMb: facts.memoryMb ?? 256,
    deviceArgv: ['-machine', 'pc-q35-10.0'],
    specHash: key,
    spec: { memoryMb: facts.memoryMb ?? 256 },
    files: {
      memory: { name: MEMORY_FILE, bytes: memorySum.bytes, dataBytes: memorySum.dataBytes, ...(options.sealed === false ? {} : { checksum: memorySum.checksum }) },
      state: { name: STATE_FILE, bytes: stateSum.bytes, checksum: stateSum.checksum },
      disk: undefined,
    },
  };
  await writeFile(paths.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
  // As a capture publishes it: stamped, its memory checksum left to the seal.
  if (options.sealed === false) await recordVerified(paths, manifest);
  return paths;
}

/** Changes one byte of a snapshot's memory file in its data, keeping its size (the file is 0444: made writable first). */
export async function damageMemory(paths: SnapshotPaths): Promise<void> {
  await chmod(paths.memory, 0o644);
  const handle = await open(paths.memory, 'r+');
  try {
    await handle.write(Buffer.from([0x5a]), 0, 1, MEMORY_DATA_OFFSET + 100);
  } finally {
    await handle.close();
  }
  await chmod(paths.memory, SNAPSHOT_FILE_MODE);
}

/** An instance folder with, as asked, a state.json, a pidfile and a snapshot-key file. */
export async function writeInstance(home: string, name: string, files: { state?: Partial<InstanceState>; pid?: number; snapshotKey?: string } = {}): Promise<string> {
  const dir = join(home, 'instances', name);
  await mkdir(dir, { recursive: true });
  if (files.state) await writeFile(join(dir, 'state.json'), JSON.stringify(instanceState(dir, name, files.state)));
  if (files.pid !== undefined) await writeFile(join(dir, 'qemu.pid'), `${files.pid}\n`);
  if (files.snapshotKey !== undefined) await writeFile(join(dir, 'snapshot-key'), `${files.snapshotKey}\n`);
  return dir;
}

function instanceState(dir: string, name: string, overrides: Partial<InstanceState>): InstanceState {
  return {
    name,
    pid: 1,
    startedAt: '2026-11-22T00:00:01.000Z',
    path: 'resume',
    accel: 'tcg',
    qemuVersion: '10.0.2',
    machineType: 'pc-q35-10.0',
    qmpSocket: join(dir, 'qmp.sock'),
    argv: [],
    specHash: 'k1',
    forwards: [{ guest: 8080, host: 40001 }],
    health: [{ url: 'http://127.0.0.1:40001/healthz', expectStatus: 200 }],
    ...overrides,
  };
}
