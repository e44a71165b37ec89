import { readFile, rm } from 'node:fs/promises';
import { writeFileDurably } from '../support/durable.js';
import type { HostFacts } from '../snapshot/manifest.js';

/** What a running instance's `state.json` says; read by `status` and `stop`. No secrets. */
export interface InstanceState {
  name: string;
  pid: number;
  startedAt: string;
  path: string;
  accel: string;
  qemuVersion: string;
  machineType: string;
  qmpSocket: string;
  /** QEMU's argv as a cold boot would give it (no -incoming): what `warmvm capture` records. */
  argv: string[];
  specHash: string;
  /** The config key of the snapshot a resumed instance maps its RAM from; absent for a cold-booted one. */
  snapshot?: string | undefined;
  forwards: { guest: number; host: number }[];
  health: { url: string; expectStatus: number }[];
  /** What the VM's state depends on, as a snapshot's manifest records it: a suspend keeps them, the next start checks them. */
  facts?: HostFacts;
  /** The snapshot (config key) whose frozen disk the instance's overlay backs onto; absent without a disk. */
  diskSnapshot?: string | undefined;
}

/** Published durably: `status` and the next start trust it to name the QEMU that ended healthy. */
export async function writeInstanceState(file: string, state: InstanceState): Promise<void> {
  await writeFileDurably(file, `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

export async function readInstanceState(file: string): Promise<InstanceState | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as InstanceState;
  } catch {
    return undefined;
  }
}

export async function removeInstanceState(file: string): Promise<void> {
  await rm(file, { force: true });
}
