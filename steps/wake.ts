import { rm } from 'node:fs/promises';
import { moveIfThere, readSuspended, setAsideSuspended, suspendPaths } from '../adapters/instance/suspended.js';
import { buildQemuArgv } from '../adapters/qemu/argv.js';
import { manifestMismatch } from '../adapters/snapshot/manifest.js';
import type { PreparedState } from '../machines/resume.js';
import type { SuspendedChoice } from '../machines/start.js';
import { need, type Run } from './run.js';
import { chooseForwards, hostFacts, launchPlan, writeRuntimeDisk } from './vm.js';

/**
 * Waking an instance from the state `stop --suspend` kept: judged against this host and config
 * like a snapshot, loaded into anonymous RAM (the stream holds it all), its own overlay and
 * secrets put back. A state that cannot be woken is set aside with its reason, never lost.
 */
export async function findSuspended(run: Run): Promise<SuspendedChoice> {
  const paths = suspendPaths(run.paths.dir);
  const found = await readSuspended(paths);
  if (found.kind === 'none') return { status: 'none' };
  const reason = found.kind === 'unreadable' ? found.reason : manifestMismatch(found.record, hostFacts(run), 'suspended state');
  if (reason !== undefined || found.kind !== 'found') {
    const why = reason ?? 'it cannot be read';
    const aside = await setAsideSuspended(paths, why);
    return { status: 'setAside', reason: `${why}; it is kept in ${aside ?? paths.dir}` };
  }
  run.suspended = { paths, record: found.record };
  return { status: 'wakeable', suspendedAt: found.record.suspendedAt, secrets: found.record.secrets };
}

/** The overlay and secrets back in the instance folder, ports chosen anew, the settings disk written. */
export async function prepareWake(run: Run): Promise<PreparedState> {
  const { paths, record } = need(run.suspended, 'the suspended state');
  run.resumed = undefined;
  if (record.disk) await moveIfThere(paths.disk, run.paths.overlay);
  if (record.secrets) await moveIfThere(paths.secrets, run.paths.secretsFile);
  await chooseForwards(run);
  await writeRuntimeDisk(run);
  return { checked: [], forwards: run.forwards.length, overlay: record.disk };
}

/** The config's devices with this instance's paths and ports, the RAM anonymous: it comes whole in the stream. */
export function wakeArgv(run: Run): string[] {
  return buildQemuArgv(launchPlan(run, { access: 'anonymous' }));
}

/** After a failed wake, once its QEMU is stopped: the overlay and secrets go back, and the state is set aside. */
export async function setAsideWake(run: Run, reason: string | undefined): Promise<void> {
  const suspended = run.suspended;
  if (suspended === undefined) return;
  run.suspended = undefined;
  if (suspended.record.disk) await moveIfThere(run.paths.overlay, suspended.paths.disk);
  if (suspended.record.secrets) await moveIfThere(run.paths.secretsFile, suspended.paths.secrets);
  await setAsideSuspended(suspended.paths, `waking it failed: ${reason ?? 'unknown'}`);
}

/** A healthy wake: the state is the running instance's now, and its stream is of no more use. */
export async function finishWake(run: Run): Promise<void> {
  const suspended = need(run.suspended, 'the suspended state');
  await rm(suspended.paths.dir, { recursive: true, force: true });
}
