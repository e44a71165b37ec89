import { manifestMismatch, type HostFacts } from '../adapters/snapshot/manifest.js';
import { readResumeFailures } from '../adapters/snapshot/resume-failures.js';
import { readSnapshot } from '../adapters/snapshot/store.js';
import type { SnapshotChoice } from '../machines/start.js';
import { FAILURES_BEFORE_SET_ASIDE } from '../shapes/snapshot-policy.js';
import { need, type Run } from './run.js';
import { cpuModel, specHash, specSummary } from './spec-facts.js';
import { launchDevices } from './vm.js';

/** What a snapshot must match to be resumed on this host with this config. */
export function hostFacts(run: Run): HostFacts {
  const qemu = need(run.qemu, 'QEMU');
  return {
    qemuVersion: qemu.version.text,
    machineType: qemu.machineType,
    accel: need(run.accel, 'the accelerator').accel,
    cpuModel: cpuModel(run),
    specHash: specHash(run),
    spec: specSummary(run),
    deviceArgv: launchDevices(run),
  };
}

/** The config's snapshot when this host can resume it; else why not, or nothing when there is none. Changes nothing. */
export async function judge(run: Run): Promise<{ usable?: Extract<SnapshotChoice, { status: 'usable' }>; reason?: string }> {
  const snapshot = need(run.snapshot, 'the snapshot');
  const found = await readSnapshot(snapshot);
  if (found.kind === 'missing') return {};
  if (found.kind === 'unreadable') return { reason: found.reason };
  const mismatch = manifestMismatch(found.manifest, hostFacts(run));
  if (mismatch !== undefined) return { reason: mismatch };
  const failuresInARow = await readResumeFailures(snapshot);
  if (failuresInARow >= FAILURES_BEFORE_SET_ASIDE) return { reason: `its guest failed after ${failuresInARow} resumes in a row (rotation or health)` };
  run.manifest = found.manifest;
  return { usable: { status: 'usable', failuresInARow } };
}
