import type { TraceEntry } from '../../adapters/trace/record.js';
import { FAILURES_BEFORE_SET_ASIDE } from '../../shapes/snapshot-policy.js';
import { RUN_CEILING_MS, type WorldRun } from './world-run.js';

/** A snapshot's own damage, met reading or loading it: the only failures that may set it aside (invariant 6). */
const DAMAGE = /^resume\.(preparing|incoming): .*(E_SNAPSHOT_CORRUPT|E_SNAPSHOT_MISSING|E_MIGRATION_INCOMING|E_NOT_PAUSED|not "paused")/;
/** A failure of the guest run from the snapshot, after `cont`: twice in a row, and the snapshot is set aside. */
const AFTER_CONT = /^resume\.(rotating|probing): /;

/**
 * Which of DESIGN.md's invariants a run broke, in words, checked on its trace and on the world
 * its fakes changed. Empty when it kept them all.
 */
export function brokenInvariants(run: WorldRun): string[] {
  const broken: string[] = [...run.world.violations];
  const { trace, output, world, input } = run;
  const states = trace.map((entry) => entry.state);

  // 1. cont only after migrate-incoming completed with runstate `paused`.
  trace.forEach((entry, index) => {
    if (entry.state !== 'resume.cont') return;
    const paused = trace
      .slice(0, index)
      .reverse()
      .find((earlier) => earlier.machine === 'resume');
    const runstate = (paused?.event.output as { runstate?: string } | undefined)?.runstate;
    if (entry.from !== 'resume.paused' || paused?.state !== 'resume.paused' || runstate !== 'paused') {
      broken.push(`1: resume.cont entered from ${entry.from ?? 'nowhere'} (incoming said ${String(runstate)})`);
    }
  });

  // 2. One QEMU at a time (spawns are checked by the world); none left but the one that runs.
  if (output?.outcome === 'healthy' && (world.live.size !== 1 || !world.live.has(output.pid))) {
    broken.push(`2: healthy with pid ${output.pid} but live QEMUs are [${[...world.live].join(', ')}]`);
  }
  if (output?.outcome === 'failed' && output.stopError === undefined && world.live.size > 0) {
    broken.push(`2: failed (${output.failure.code}) and QEMU [${[...world.live].join(', ')}] still runs, with no stop error said`);
  }
  if (world.launchesAfterCancel > 0) broken.push(`2: ${world.launchesAfterCancel} QEMU(s) launched after Ctrl-C`);
  if (world.cancelled && output?.outcome === 'healthy') broken.push('4: Ctrl-C, yet the run went on to healthy');

  // 3. Healthy only with fresh secrets, unless the user turned rotation off and the trace warns.
  if (output?.outcome === 'healthy' && world.finalSecrets(output.pid) !== 'fresh') {
    const warned = trace.some((entry) => entry.warning !== undefined);
    if (input.rotation || !warned) broken.push(`3: healthy with placeholder secrets (rotation ${input.rotation ? 'on' : 'off'}, warning in trace: ${warned})`);
  }

  // 4. Ends, within the sum of its bounds, having fallen back at most once.
  if (run.stuck || output === undefined) broken.push(`4: did not end: stuck in ${states.at(-1) ?? 'nothing'}`);
  if (run.elapsedMs > RUN_CEILING_MS) broken.push(`4: took ${run.elapsedMs} ms, over the sum of its bounds (${RUN_CEILING_MS} ms)`);
  // A snapshot set aside while choosing counts as the fast path failing: the cold boot is the fallback.
  const fallbacks = fallbackCount(trace) + (world.choices.some((choice) => choice.status === 'setAside') ? 1 : 0);
  if (fallbacks > 1) broken.push(`4: fell back ${fallbacks} times`);
  // …and booted cold again only after a QEMU crashed by itself, once.
  const bootedAgain = trace.filter((entry) => entry.state === 'start.coldBoot' && entry.from === 'start.bootingAgain').length;
  if (bootedAgain > Math.min(1, world.crashes)) broken.push(`4: booted cold again ${bootedAgain} times after ${world.crashes} QEMU crash(es)`);
  const last = trace.filter((entry) => entry.machine === 'start').at(-1)?.state;
  if (output !== undefined && last !== 'start.running' && last !== 'start.failed') broken.push(`4: ended in ${String(last)}`);

  // 5. The store changes only by a complete capture.
  const captured = states.filter((state) => state === 'capture.captured').length;
  if (world.storeVersion !== captured) broken.push(`5: the store changed ${world.storeVersion} times for ${captured} completed captures`);

  // 6. Only a damaged snapshot is set aside, or one whose guest failed after `cont` a second time in a row.
  const usable = world.choices.find((choice) => choice.status === 'usable');
  const failedBefore = usable?.status === 'usable' ? usable.failuresInARow : 0;
  for (const reason of world.setAsides) {
    if (DAMAGE.test(reason)) continue;
    if (AFTER_CONT.test(reason) && failedBefore + 1 >= FAILURES_BEFORE_SET_ASIDE) continue;
    broken.push(`6: a snapshot was set aside for "${reason}" (${failedBefore} failed resumes in a row before)`);
  }

  // 7. No secret in the trace.
  const text = JSON.stringify(trace);
  for (const value of world.secretValues) if (text.includes(value)) broken.push(`7: a secret value is in the trace`);
  return broken;
}

/** Times the root machine took the fallback edge: out of a failed resume or capture into a cold boot. */
export function fallbackCount(trace: TraceEntry[]): number {
  return trace.filter((entry) => (entry.state === 'start.coldBoot' || entry.state === 'start.settingAside') && (entry.from === 'start.resume' || entry.from === 'start.capture'))
    .length;
}

/** The root machine's states in order, for a failing property's message. */
export function describeRun(run: WorldRun): string {
  return [
    `input ${JSON.stringify(run.input, (key, value: unknown) => (key === 'bounds' ? undefined : value))}`,
    `calls ${run.world.calls.join(' ')}`,
    `states ${run.trace.map((entry) => entry.state).join(' → ')}`,
    `output ${JSON.stringify(run.output)}`,
  ].join('\n');
}
