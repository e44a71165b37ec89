import { readdir, readFile } from 'node:fs/promises';
import { homePaths, instancePaths, validateInstanceName, type InstancePaths } from '../instance/paths.js';
import { parseManifest } from '../snapshot/manifest.js';
import { bytesOnDisk, listSnapshotKeys, snapshotPaths } from '../snapshot/store.js';
import { instanceStatus, type InstanceStatus } from './control.js';

/** One published snapshot as `warmvm list` shows it, with the running instances that map its RAM. */
export interface SnapshotSummary {
  key: string;
  /** Why its manifest cannot be read (the other facts are then unknown); undefined when it can. */
  problem: string | undefined;
  capturedBy: string | undefined;
  createdAt: string | undefined;
  memoryMb: number | undefined;
  qemuVersion: string | undefined;
  /** The versioned machine type (`pc-q35-10.0`). */
  machineType: string | undefined;
  accel: string | undefined;
  cpuModel: string | undefined;
  /** What its files take on the disk (allocated blocks): a sparse memory file counts only its data. */
  bytesOnDisk: number;
  /** The running instances resumed from it, by name. */
  usedBy: string[];
}

/** The names of the folders under `instances/` that can be an instance's (a valid instance name). */
export async function listInstanceNames(home: string): Promise<string[]> {
  const entries = await readdir(homePaths(home).instances, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isDirectory() && validName(entry.name))
    .map((entry) => entry.name)
    .sort();
}

/** Every instance's status, asked in parallel (health once, briefly, unless `health: false`). */
export async function listInstances(home: string, options: { health?: boolean } = {}): Promise<InstanceStatus[]> {
  const names = await listInstanceNames(home);
  return Promise.all(names.map((name) => instanceStatus(instancePaths(home, name), options)));
}

/** The running instances whose RAM is mapped from the snapshot `key`, and the suspended ones whose disk backs onto it. */
export function runningFrom(instances: InstanceStatus[], key: string): string[] {
  return instances
    .filter((instance) => (instance.state === 'running' && instance.snapshot === key) || instance.suspendedOn === key)
    .map((instance) => (instance.suspendedOn === key ? `${instance.name} (suspended)` : instance.name));
}

/** Every published snapshot, read without touching the store, with which of `instances` run from it. */
export async function listSnapshots(home: string, instances: InstanceStatus[]): Promise<SnapshotSummary[]> {
  const root = homePaths(home).snapshots;
  return Promise.all((await listSnapshotKeys(root)).map((key) => summarize(root, key, instances)));
}

async function summarize(root: string, key: string, instances: InstanceStatus[]): Promise<SnapshotSummary> {
  const paths = snapshotPaths(root, key);
  const base = { key, bytesOnDisk: await bytesOnDisk(paths.dir), usedBy: runningFrom(instances, key) };
  const unknown = { capturedBy: undefined, createdAt: undefined, memoryMb: undefined, qemuVersion: undefined, machineType: undefined, accel: undefined, cpuModel: undefined };
  let text: string;
  try {
    text = await readFile(paths.manifest, 'utf8');
  } catch {
    return { ...base, ...unknown, problem: 'manifest.json is missing' };
  }
  try {
    const manifest = parseManifest(text);
    const { capturedBy, createdAt, memoryMb, qemuVersion, machineType, accel, cpuModel } = manifest;
    return { ...base, problem: undefined, capturedBy, createdAt, memoryMb, qemuVersion, machineType, accel, cpuModel };
  } catch (error) {
    return { ...base, ...unknown, problem: `manifest.json cannot be read: ${(error as Error).message}` };
  }
}

function validName(name: string): boolean {
  try {
    validateInstanceName(name);
    return true;
  } catch {
    return false;
  }
}

/** The key in an instance's snapshot-key file: the snapshot it last ran from or captured. */
export async function readSnapshotKey(paths: InstancePaths): Promise<string | undefined> {
  const key = (await readFile(paths.snapshotKeyFile, 'utf8').catch(() => '')).trim();
  return key === '' ? undefined : key;
}

/** The instances whose snapshot-key file names `key`: whose `reset --snapshot` removes it. */
export async function instancesNoting(home: string, key: string): Promise<string[]> {
  const names = await listInstanceNames(home);
  const keys = await Promise.all(names.map((name) => readSnapshotKey(instancePaths(home, name))));
  return names.filter((_, index) => keys[index] === key);
}
