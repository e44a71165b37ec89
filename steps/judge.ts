import { manifestMismatch } from '../adapters/snapshot/manifest.js';
import { readResumeFailures } from '../adapters/snapshot/resume-failures.js';
import { readSnapshot } from '../adapters/snapshot/store.js';
import type { SnapshotChoice } from '../machines/start.js';
import { FAILURES_BEFORE_SET_ASIDE } from '../shapes/snapshot-policy.js';
import { need, type Run } from './run.js';
import { hostFacts } from './vm.js';

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
