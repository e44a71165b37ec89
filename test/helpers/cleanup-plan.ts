/**
 * Randomised fault sequences for the cleanup e2e test: what each step does, and what it must
 * lead to given the snapshot the instance has before it. Pure: a seed gives one plan, so a
 * failure is replayed with WARMVM_CLEANUP_SEED.
 */
import { FAILURES_BEFORE_SET_ASIDE } from '../../shapes/snapshot-policy.js';

/** What the config's snapshot is: none, a good one, or one whose guest agent is stopped. */
export type SnapshotKind = 'none' | 'good' | 'noAgent';

/**
 * The snapshot, and how many resumes of it in a row failed after `cont` (its `resume-failures`
 * counter: bumped at `cont`, cleared when a resume ends healthy, gone with a new capture).
 */
export interface SnapshotModel {
  kind: SnapshotKind;
  failures: number;
}

export const NO_SNAPSHOT: SnapshotModel = { kind: 'none', failures: 0 };

/**
 * States a SIGKILL of QEMU can be aimed at and land in. A capture pauses, migrates (~10 ms: only
 * the device state, the RAM is already in its file) and quits in tens of milliseconds, too short
 * to aim a kill at: for `capture.stopping` QEMU is frozen (SIGSTOP) as the state is entered, so the
 * pause waits on it there, and killed `delayMs` later.
 */
export type KillState = 'coldBoot.booting' | 'coldBoot.rotating' | 'coldBoot.probing' | 'capture.stopping' | 'resume.incoming' | 'resume.rotating' | 'resume.probing';

/** Kills whose QEMU is frozen first (see KillState). */
export function freezesFirst(state: KillState): boolean {
  return state.startsWith('capture.');
}

/** A snapshot file damaged in place: cut short (its size is not the manifest's), or overwritten at the same size (only its checksum tells). */
export type Damage = { file: 'memory' | 'state'; how: 'truncate' | 'overwrite' };

export type Step =
  /** A plain start: brings the model to a snapshot when a fault needs one. */
  | { kind: 'start' }
  /** SIGKILL of the instance's QEMU `delayMs` after the start enters `state`; `cold`: with --cold. */
  | { kind: 'kill'; state: KillState; cold: boolean; delayMs: number }
  /** mem.raw or state.raw truncated or overwritten: the resume fails in preparing, the snapshot is set aside and captured anew. */
  | ({ kind: 'damage' } & Damage)
  /** start --cold, qemu-ga stopped inside the guest, capture; then a start whose resume cannot rotate. */
  | { kind: 'agentStopped' }
  /** A start whose health check never answers 200. */
  | { kind: 'unhealthy' };

export type FaultKind = Exclude<Step['kind'], 'start'>;
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'damage', 'agentStopped', 'unhealthy'];

/** What the (last) start of a step must end as. */
export interface Expectation {
  outcome: 'healthy' | 'failed';
  path?: string;
  /** A failed start's failedState. */
  failedIn?: string;
  /** A healthy start's fallbackReason must match this (a regex source); none when undefined. */
  fallbackReason?: string;
  snapshot: 'unchanged' | 'replaced' | 'none';
  /** When this start moves the config's snapshot to a `.set-aside-<time>/` folder: what its reason.txt must match (a regex source); else undefined. */
  setAside: string | undefined;
  /** The start's whole trace, exactly: where it failed, and that it fell back at most once. */
  states: string[];
}

/** Kills within this much of a state's entry still land inside it (TCG, this guest: see test/traces/runs). */
const MAX_DELAY_MS: Partial<Record<KillState, number>> = { 'coldBoot.booting': 1500, 'capture.stopping': 300, 'resume.rotating': 150 };

/** mulberry32: small, seedable, good enough to pick faults. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** Which QEMU kills a start can meet, given the snapshot (with a snapshot, coldBoot needs --cold). */
function killChoices(model: SnapshotModel): { state: KillState; cold: boolean }[] {
  const resume: KillState[] = model.kind === 'noAgent' ? ['resume.incoming', 'resume.rotating'] : ['resume.incoming', 'resume.rotating', 'resume.probing'];
  if (model.kind === 'none') {
    // A first start's cold boot captures, so it does not rotate.
    return [
      ...(['coldBoot.booting', 'coldBoot.probing', 'capture.stopping'] as const).map((state) => ({ state, cold: false })),
      ...resume.map((state) => ({ state, cold: false })),
    ];
  }
  return [...(['coldBoot.booting', 'coldBoot.rotating', 'coldBoot.probing'] as const).map((state) => ({ state, cold: true })), ...resume.map((state) => ({ state, cold: false }))];
}

const DAMAGES: readonly Damage[] = [
  { file: 'memory', how: 'truncate' },
  { file: 'memory', how: 'overwrite' },
  { file: 'state', how: 'truncate' },
  { file: 'state', how: 'overwrite' },
];

/**
 * The plan for one seed: 2 or 3 faults, the first of kind FAULT_KINDS[seed % 4] (so any four
 * consecutive seeds cover every kind), a plain start inserted where a fault needs a snapshot.
 */
export function planSequence(seed: number): Step[] {
  const random = prng(seed);
  const count = 2 + Math.floor(random() * 2);
  const steps: Step[] = [];
  let model: SnapshotModel = NO_SNAPSHOT;
  for (let index = 0; index < count; index += 1) {
    const kind = index === 0 ? (FAULT_KINDS[seed % FAULT_KINDS.length] as FaultKind) : pick(random, FAULT_KINDS);
    let step: Step;
    if (kind === 'kill') {
      const choice: { state: KillState; cold: boolean } = pick(random, killChoices(model));
      step = { kind, ...choice, delayMs: Math.floor(random() * ((MAX_DELAY_MS[choice.state] ?? 0) + 1)) };
    } else if (kind === 'damage') {
      if (model.kind === 'none') {
        steps.push({ kind: 'start' });
        model = expectStep({ kind: 'start' }, model).next;
      }
      step = { kind, ...pick(random, DAMAGES) };
    } else {
      step = { kind };
    }
    steps.push(step);
    model = expectStep(step, model).next;
  }
  return steps;
}

export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'kill':
      return `kill@${step.state}${step.delayMs > 0 ? `+${step.delayMs}ms` : ''}${freezesFirst(step.state) ? '(frozen)' : ''}${step.cold ? '(--cold)' : ''}`;
    case 'damage':
      return `${step.how}(${step.file === 'memory' ? 'mem.raw' : 'state.raw'})`;
    default:
      return step.kind;
  }
}

export function describeModel(model: SnapshotModel): string {
  return model.kind === 'none' ? 'none' : `${model.kind}, ${model.failures} failed resume(s) in a row`;
}

const PREFIX = ['start.preflight', 'start.image', 'start.accelerator', 'start.suspended', 'start.choosing'];
const RESUME_STATES = ['resume.preparing', 'resume.launching', 'resume.incoming', 'resume.paused', 'resume.cont', 'resume.rotating', 'resume.probing'];
const RESUMED = ['start.resume', ...RESUME_STATES, 'resume.healthy', 'start.running'];
const CAPTURED = ['start.capture', 'capture.stopping', 'capture.migrating', 'capture.quitting', 'capture.storing', 'capture.captured'];
/** States whose failure counts against the snapshot: the guest ran from it (after `cont`) and then failed. */
const AFTER_CONT: readonly string[] = ['resume.rotating', 'resume.probing'];

/** A cold boot's states; one followed by a capture does not rotate (the snapshot keeps placeholders). */
function coldStates(capturing: boolean): string[] {
  return ['coldBoot.preparing', 'coldBoot.launching', 'coldBoot.booting', ...(capturing ? [] : ['coldBoot.rotating']), 'coldBoot.probing'];
}

function coldReady(capturing: boolean): string[] {
  return ['start.coldBoot', ...coldStates(capturing), 'coldBoot.ready', ...(capturing ? [] : ['start.running'])];
}

function coldFailedIn(state: string, capturing: boolean): string[] {
  const states = coldStates(capturing);
  return ['start.coldBoot', ...states.slice(0, states.indexOf(state) + 1), 'coldBoot.stopping', 'coldBoot.failed', 'start.failed'];
}

function resumeFailedIn(state: string): string[] {
  return ['start.resume', ...RESUME_STATES.slice(0, RESUME_STATES.indexOf(state) + 1), 'resume.stopping', 'resume.failed'];
}

const escapeRegex = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The fallback reason of a resume that failed in `state`: `<state>: <message>`. */
const failedInState = (state: string): string => `^${escapeRegex(state)}: `;

interface Outcome {
  expectation: Expectation;
  next: SnapshotModel;
}

/**
 * A resume of `model` that fails in `state`, then what the start does next: `after(capture)` is
 * the cold boot it falls back to (capturing or not) and what that ends as. A failure after `cont`
 * counts against the snapshot (the counter was bumped at `cont`); the second such failure in a row
 * sets it aside and the cold boot captures anew. Damage met while reading it sets it aside too.
 */
function resumeFails(
  model: SnapshotModel,
  state: string,
  /** Damage met while reading the snapshot: what the reason names (a regex source), else undefined. */
  damage: string | undefined,
  after: (capture: boolean) => { outcome: Expectation['outcome']; states: string[]; path?: string; failedIn?: string; captured: boolean },
): Outcome {
  const counted = AFTER_CONT.includes(state);
  const failures = model.failures + (counted ? 1 : 0);
  const setAside = damage !== undefined || (counted && failures >= FAILURES_BEFORE_SET_ASIDE);
  const reason = `${failedInState(state)}${damage === undefined ? '' : `.*${damage}`}`;
  const cold = after(setAside);
  const states = [...PREFIX, ...resumeFailedIn(state), ...(setAside ? ['start.settingAside'] : []), ...cold.states];
  const expectation: Expectation = {
    outcome: cold.outcome,
    ...(cold.path === undefined ? {} : { path: cold.path }),
    ...(cold.failedIn === undefined ? {} : { failedIn: cold.failedIn }),
    ...(cold.outcome === 'healthy' ? { fallbackReason: reason } : {}),
    snapshot: setAside ? (cold.captured ? 'replaced' : 'none') : 'unchanged',
    setAside: setAside ? reason : undefined,
    states,
  };
  const next: SnapshotModel = setAside ? (cold.captured ? { kind: 'good', failures: 0 } : NO_SNAPSHOT) : { kind: model.kind, failures };
  return { expectation, next };
}

/** The cold boot a fallback runs, healthy: with a capture, then the resume of the new snapshot. */
function coldThenHealthy(capture: boolean) {
  return capture
    ? { outcome: 'healthy' as const, path: 'cold+capture+resume', states: [...coldReady(true), ...CAPTURED, ...RESUMED], captured: true }
    : { outcome: 'healthy' as const, path: 'cold', states: coldReady(false), captured: false };
}

/** The cold boot a fallback runs, failing in `state`: nothing captured either way. */
function coldThenFailed(state: string) {
  return (capture: boolean) => ({ outcome: 'failed' as const, failedIn: state, states: coldFailedIn(state, capture), captured: false });
}

/** The reason `choosing` gives when it sets aside a snapshot whose counter is at the limit. */
const BY_CHOOSING = 'failed after \\d+ resumes in a row';

/** What the reason for damage names: the file, and its size (truncated) or its checksum (overwritten). */
function damageReason(damage: Damage): string {
  return `${escapeRegex(damage.file === 'memory' ? 'mem.raw' : 'state.raw')}.*${damage.how === 'truncate' ? 'bytes' : 'checksum'}`;
}

/**
 * A start that `choosing` found a snapshot for whose counter is at the limit: set aside there, so
 * it goes as a first start; but that set-aside was its one fallback, so a resume of the new
 * capture that fails ends the start failed.
 */
function setAsideByChoosing(step: Step): Outcome {
  if (step.kind === 'kill' && freezesFirst(step.state)) {
    const states = [...PREFIX, ...coldReady(true), 'start.capture', 'capture.stopping', 'capture.recovering', 'capture.failed', 'start.failed'];
    return { expectation: { outcome: 'failed', failedIn: step.state, snapshot: 'none', setAside: BY_CHOOSING, states }, next: NO_SNAPSHOT };
  }
  if (step.kind === 'kill' && step.state.startsWith('resume.')) {
    const states = [...PREFIX, ...coldReady(true), ...CAPTURED, ...resumeFailedIn(step.state), 'start.failed'];
    const failures = AFTER_CONT.includes(step.state) ? 1 : 0;
    return { expectation: { outcome: 'failed', failedIn: step.state, snapshot: 'replaced', setAside: BY_CHOOSING, states }, next: { kind: 'good', failures } };
  }
  const { expectation, next } = expectStep(step, NO_SNAPSHOT);
  return {
    expectation: { ...expectation, ...(expectation.outcome === 'healthy' ? { fallbackReason: BY_CHOOSING } : {}), setAside: BY_CHOOSING },
    next,
  };
}

/**
 * The step as it can run on the snapshot there really is, when a kill that landed late left
 * another than the plan foresaw (a capture let through): a cold boot killed with a snapshot in
 * place needs --cold, a capture needs no snapshot, an agentless snapshot never reaches probing.
 */
export function adaptStep(step: Step, model: SnapshotModel): Step {
  if (step.kind !== 'kill') return step;
  if (model.kind === 'none') return step.state === 'coldBoot.rotating' && !step.cold ? { ...step, cold: true } : step;
  if (step.state.startsWith('coldBoot.') && !step.cold) return { ...step, cold: true };
  if (freezesFirst(step.state)) return { kind: 'start' };
  if (step.state === 'resume.probing' && model.kind === 'noAgent') return { ...step, state: 'resume.rotating' };
  return step;
}

/** What a step's (last) start must end as, and the snapshot model after it. */
export function expectStep(step: Step, model: SnapshotModel): Outcome {
  // A snapshot whose counter already reached the limit (a kill that landed in `cont`, say) is set
  // aside by `choosing` itself: the start then goes as with no snapshot, and says why.
  const cold = (step.kind === 'kill' && step.cold) || step.kind === 'agentStopped';
  if (!cold && model.kind !== 'none' && model.failures >= FAILURES_BEFORE_SET_ASIDE) return setAsideByChoosing(step);
  const unchanged = (rest: Omit<Expectation, 'snapshot' | 'setAside'>): Outcome => ({
    expectation: { ...rest, snapshot: model.kind === 'none' ? 'none' : 'unchanged', setAside: undefined },
    next: model,
  });
  const firstStart = (): Outcome => ({
    expectation: {
      outcome: 'healthy',
      path: 'cold+capture+resume',
      snapshot: 'replaced',
      setAside: undefined,
      states: [...PREFIX, ...coldReady(true), ...CAPTURED, ...RESUMED],
    },
    next: { kind: 'good', failures: 0 },
  });
  switch (step.kind) {
    case 'start':
      if (model.kind === 'none') return firstStart();
      if (model.kind === 'good') {
        // A healthy resume clears the counter.
        return {
          expectation: { outcome: 'healthy', path: 'resume', snapshot: 'unchanged', setAside: undefined, states: [...PREFIX, ...RESUMED] },
          next: { kind: 'good', failures: 0 },
        };
      }
      return resumeFails(model, 'resume.rotating', undefined, coldThenHealthy);
    case 'damage':
      // No healing copy: any damage found in preparing sets the snapshot aside; the cold boot captures anew.
      if (model.kind === 'none') return firstStart();
      return resumeFails(model, 'resume.preparing', damageReason(step), coldThenHealthy);
    case 'agentStopped': {
      // Its last start resumes the agentless snapshot its capture made (a new one: no failures counted yet).
      const fresh: SnapshotModel = { kind: 'noAgent', failures: 0 };
      const outcome = expectStep({ kind: 'start' }, fresh);
      return { expectation: { ...outcome.expectation, snapshot: 'unchanged' }, next: outcome.next };
    }
    case 'unhealthy':
      if (model.kind === 'none') return unchanged({ outcome: 'failed', failedIn: 'coldBoot.probing', states: [...PREFIX, ...coldFailedIn('coldBoot.probing', true)] });
      return resumeFails(model, model.kind === 'good' ? 'resume.probing' : 'resume.rotating', undefined, coldThenFailed('coldBoot.probing'));
    case 'kill':
      if (step.state.startsWith('coldBoot.')) return unchanged({ outcome: 'failed', failedIn: step.state, states: [...PREFIX, ...coldFailedIn(step.state, !step.cold)] });
      if (freezesFirst(step.state)) {
        // A first start's capture fails: recovering drops the half-made capture, then one cold boot, nothing captured.
        const failedCapture = ['start.capture', 'capture.stopping', 'capture.recovering', 'capture.failed'];
        return {
          expectation: {
            outcome: 'healthy',
            path: 'cold',
            fallbackReason: failedInState(step.state),
            snapshot: 'none',
            setAside: undefined,
            states: [...PREFIX, ...coldReady(true), ...failedCapture, ...coldReady(false)],
          },
          next: NO_SNAPSHOT,
        };
      }
      if (model.kind === 'none') {
        // A first start: the capture is made, then its resume is killed (a first failure: no set-aside).
        const fresh = resumeFails({ kind: 'good', failures: 0 }, step.state, undefined, coldThenHealthy);
        const states = [...PREFIX, ...coldReady(true), ...CAPTURED, ...fresh.expectation.states.slice(PREFIX.length)];
        return { expectation: { ...fresh.expectation, snapshot: 'replaced', states }, next: fresh.next };
      }
      // A QEMU killed after `cont` counts against the snapshot like a failed rotation.
      return resumeFails(model, step.state, undefined, coldThenHealthy);
  }
}
