/**
 * Randomised fault sequences for the cleanup e2e test: what each step does, and what it must
 * lead to given the snapshot the instance has before it. Pure: a seed gives one plan, so a
 * failure is replayed with WARMVM_CLEANUP_SEED.
 */

/** What the instance's snapshot is: none, a good one, or one whose guest agent is stopped. */
export type SnapshotModel = 'none' | 'good' | 'noAgent';

export type KillState = 'coldBoot.booting' | 'coldBoot.rotating' | 'coldBoot.probing' | 'capture.migrating' | 'resume.incoming' | 'resume.rotating' | 'resume.probing';

export type Step =
  /** A plain start: brings the model to a snapshot when a fault needs one. */
  | { kind: 'start' }
  /** SIGKILL of the instance's QEMU `delayMs` after the start enters `state`; `cold`: with --cold. */
  | { kind: 'kill'; state: KillState; cold: boolean; delayMs: number }
  /** state.raw cut in half (the .zst heals it), or both cut (the snapshot is damaged). */
  | { kind: 'truncate'; file: 'raw' | 'zst' }
  /** start --cold, qemu-ga stopped inside the guest, capture; then a start whose resume cannot rotate. */
  | { kind: 'agentStopped' }
  /** A start whose health check never answers 200. */
  | { kind: 'unhealthy' };

export type FaultKind = Exclude<Step['kind'], 'start'>;
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'truncate', 'agentStopped', 'unhealthy'];

/** What the (last) start of a step must end as. */
export interface Expectation {
  outcome: 'healthy' | 'failed';
  path?: string;
  /** The state that failed: the start's failedState, or where its fallback came from. */
  failedIn?: string;
  snapshot: 'unchanged' | 'replaced' | 'none';
  /** The start's whole trace, exactly: where it failed, and that it fell back at most once. */
  states: string[];
}

/** Kills within this much of a state's entry still land inside it (TCG, this guest: see test/traces/runs). */
const MAX_DELAY_MS: Partial<Record<KillState, number>> = { 'coldBoot.booting': 1500, 'capture.migrating': 250, 'resume.rotating': 150 };

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
  const resume: KillState[] = model === 'noAgent' ? ['resume.incoming', 'resume.rotating'] : ['resume.incoming', 'resume.rotating', 'resume.probing'];
  if (model === 'none') {
    return [
      ...(['coldBoot.booting', 'coldBoot.probing', 'capture.migrating'] as const).map((state) => ({ state, cold: false })),
      ...resume.map((state) => ({ state, cold: false })),
    ];
  }
  return [...(['coldBoot.booting', 'coldBoot.rotating', 'coldBoot.probing'] as const).map((state) => ({ state, cold: true })), ...resume.map((state) => ({ state, cold: false }))];
}

/**
 * The plan for one seed: 2 or 3 faults, the first of kind FAULT_KINDS[seed % 4] (so any four
 * consecutive seeds cover every kind), a plain start inserted where a fault needs a snapshot.
 */
export function planSequence(seed: number): Step[] {
  const random = prng(seed);
  const count = 2 + Math.floor(random() * 2);
  const steps: Step[] = [];
  let model: SnapshotModel = 'none';
  for (let index = 0; index < count; index += 1) {
    const kind = index === 0 ? (FAULT_KINDS[seed % FAULT_KINDS.length] as FaultKind) : pick(random, FAULT_KINDS);
    let step: Step;
    if (kind === 'kill') {
      const choice: { state: KillState; cold: boolean } = pick(random, killChoices(model));
      step = { kind, ...choice, delayMs: Math.floor(random() * ((MAX_DELAY_MS[choice.state] ?? 0) + 1)) };
    } else if (kind === 'truncate') {
      if (model === 'none') {
        steps.push({ kind: 'start' });
        model = expectStep({ kind: 'start' }, model).next;
      }
      step = { kind, file: pick(random, ['raw', 'zst'] as const) };
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
      return `kill@${step.state}${step.delayMs > 0 ? `+${step.delayMs}ms` : ''}${step.cold ? '(--cold)' : ''}`;
    case 'truncate':
      return `truncate(${step.file})`;
    default:
      return step.kind;
  }
}

const PREFIX = ['start.preflight', 'start.image', 'start.accelerator', 'start.choosing'];
const RESUME_STATES = ['resume.preparing', 'resume.launching', 'resume.incoming', 'resume.paused', 'resume.cont', 'resume.rotating', 'resume.probing'];
const RESUMED = ['start.resume', ...RESUME_STATES, 'resume.healthy', 'start.running'];
const CAPTURED = ['start.capture', 'capture.stopping', 'capture.migrating', 'capture.quitting', 'capture.storing', 'capture.captured'];

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

/** The fallback to a cold boot (no capture: the snapshot is kept) after a resume failed in `state`. */
function resumeFallback(state: string): Pick<Expectation, 'outcome' | 'path' | 'failedIn' | 'states'> {
  return { outcome: 'healthy', path: 'cold', failedIn: state, states: [...PREFIX, ...resumeFailedIn(state), ...coldReady(false)] };
}

/** What a step's (last) start must end as, and the snapshot model after it. */
export function expectStep(step: Step, model: SnapshotModel): { expectation: Expectation; next: SnapshotModel } {
  const unchanged = (rest: Omit<Expectation, 'snapshot'>): { expectation: Expectation; next: SnapshotModel } => ({
    expectation: { ...rest, snapshot: model === 'none' ? 'none' : 'unchanged' },
    next: model,
  });
  const firstStart = (): { expectation: Expectation; next: SnapshotModel } => ({
    expectation: { outcome: 'healthy', path: 'cold+capture+resume', snapshot: 'replaced', states: [...PREFIX, ...coldReady(true), ...CAPTURED, ...RESUMED] },
    next: 'good',
  });
  switch (step.kind) {
    case 'start':
      if (model === 'none') return firstStart();
      return unchanged(model === 'good' ? { outcome: 'healthy', path: 'resume', states: [...PREFIX, ...RESUMED] } : resumeFallback('resume.rotating'));
    case 'truncate':
      if (step.file === 'zst') {
        const states = [...PREFIX, 'start.resume', 'resume.preparing', 'resume.stopping', 'resume.failed', 'start.settingAside', ...coldReady(true), ...CAPTURED, ...RESUMED];
        return { expectation: { outcome: 'healthy', path: 'cold+capture+resume', failedIn: 'resume.preparing', snapshot: 'replaced', states }, next: 'good' };
      }
      return expectStep({ kind: 'start' }, model);
    case 'agentStopped':
      // Its last start resumes the agentless snapshot its capture made.
      return { expectation: { ...expectStep({ kind: 'start' }, 'noAgent').expectation, snapshot: 'unchanged' }, next: 'noAgent' };
    case 'unhealthy':
      if (model === 'none') return unchanged({ outcome: 'failed', failedIn: 'coldBoot.probing', states: [...PREFIX, ...coldFailedIn('coldBoot.probing', true)] });
      return unchanged({
        outcome: 'failed',
        failedIn: 'coldBoot.probing',
        states: [...PREFIX, ...resumeFailedIn(model === 'good' ? 'resume.probing' : 'resume.rotating'), ...coldFailedIn('coldBoot.probing', false)],
      });
    case 'kill':
      if (step.state.startsWith('coldBoot.')) return unchanged({ outcome: 'failed', failedIn: step.state, states: [...PREFIX, ...coldFailedIn(step.state, !step.cold)] });
      if (step.state === 'capture.migrating') {
        const failedCapture = ['start.capture', 'capture.stopping', 'capture.migrating', 'capture.recovering', 'capture.failed'];
        return {
          expectation: { outcome: 'healthy', path: 'cold', failedIn: step.state, snapshot: 'none', states: [...PREFIX, ...coldReady(true), ...failedCapture, ...coldReady(false)] },
          next: 'none',
        };
      }
      if (model === 'none') {
        // A first start: the capture is made, then its resume is killed.
        const fallback = resumeFallback(step.state);
        return {
          expectation: { ...fallback, snapshot: 'replaced', states: [...PREFIX, ...coldReady(true), ...CAPTURED, ...fallback.states.slice(PREFIX.length)] },
          next: 'good',
        };
      }
      return unchanged(resumeFallback(step.state));
  }
}
