import { assign, sendTo, setup } from 'xstate';
import { boundDelays, boundedSteps, doneOutput } from './bounded.js';
import { captureMachine, type CaptureBounds, type CaptureOutput } from './capture.js';
import { coldBootMachine, type ColdBootBounds, type ColdBootOutput, type HealthResult } from './cold-boot.js';
import { FAILURES_BEFORE_SET_ASIDE, failedAfterCont } from '../shapes/snapshot-policy.js';
import { fallbackAllowed, fallbackEdge, noFallbackFailure, snapshotDamaged, type ChildOutput } from './fallback.js';
import { placeholder } from './placeholder.js';
import type { Failure } from './failure.js';
import { resumeMachine, type ResumeBounds, type ResumeOutput } from './resume.js';

export interface StartBounds extends ColdBootBounds, ResumeBounds, CaptureBounds {
  preflightMs: number;
  imageMs: number;
  accelMs: number;
  chooseMs: number;
  /** How long a start waits for another start capturing the same config. */
  captureWaitMs: number;
  setAsideMs: number;
  /** How long a start with no usable snapshot spends pulling one from a registry before it boots cold instead. */
  pullMs: number;
}

export interface StartInput {
  bounds: StartBounds;
  /** `--cold`: boot cold, no snapshot used or made. */
  forceCold: boolean;
  /** `--no-capture`: a cold boot is not followed by a capture. */
  capture: boolean;
  /** `--no-rotation`: keep the snapshot's placeholder secrets (loudly). */
  rotation: boolean;
  /** The config names a registry to pull a snapshot from when the store has none it can use. */
  pull?: boolean;
}

/** Small, secret-free results: they are the events a trace records. */
export interface PreflightResult {
  qemuVersion: string;
  machineType: string;
  /** The pid of a QEMU that a start killed before it ended left running, which this start stopped. */
  unfinishedStopped?: number;
}
export interface ImageResult {
  image: string;
  built: boolean;
}
export interface AccelResult {
  accel: string;
  reason: string;
}
/**
 * What `choosing` found in the store; an unusable snapshot has already been set aside. Missing
 * or set aside, a start that will capture holds the config's capture lock, unless another start
 * does (`capturing`: it waits for that one's snapshot).
 */
export type SnapshotChoice =
  | { status: 'usable'; failuresInARow: number }
  | { status: 'missing' }
  | { status: 'setAside'; reason: string }
  | { status: 'capturing'; holder: number };
/** What a start that waited for another's capture found once that one let go. */
export type CaptureWait = Exclude<SnapshotChoice, { status: 'capturing' }>;
/** What `stop --suspend` left of this instance: a state to wake (with the fresh secrets it had, or not), none, or one set aside, and why. */
export type SuspendedChoice = { status: 'wakeable'; suspendedAt: string; secrets: boolean } | { status: 'none' } | { status: 'setAside'; reason: string };
/** A pull from the config's registry: a snapshot put in the store and judged usable, or why not (the cold boot runs instead). */
export type PullResult = { status: 'usable'; failuresInARow: number; digest: string } | { status: 'failed'; reason: string };

export type StartOutput =
  | {
      outcome: 'healthy';
      pid: number;
      health: HealthResult[];
      path: string;
      fallbackReason: string | undefined;
      rotated: boolean;
      /** Woken from its suspended state with the fresh secrets it had: kept, not rotated. */
      kept: boolean;
      warnings: string[];
    }
  | { outcome: 'failed'; failure: Failure; stopError: string | undefined; path: string; fallbackReason: string | undefined; warnings: string[] };

interface StartContext {
  bounds: StartBounds;
  forceCold: boolean;
  capture: boolean;
  rotation: boolean;
  /** Whether the cold boot in progress is followed by a capture. */
  captureAfterCold: boolean;
  pull: boolean;
  /** The suspended state being woken had fresh secrets: it keeps them. */
  keptSecrets: boolean;
  fallbackTaken: boolean;
  fallbackReason: string | undefined;
  /** Resumes of the chosen snapshot in a row whose guest failed after `cont`, before this one. */
  failuresInARow: number;
  /** Ctrl-C reached a child: whatever it ends with, nothing new may start. */
  interrupted: boolean;
  /** A cold boot whose QEMU crashed by itself was booted once more: a second crash ends the start. */
  bootedAgainAfterCrash: boolean;
  /** The steps that made the VM that ends up running: `cold`, `capture`, `resume`. */
  steps: string[];
  pid: number | undefined;
  health: HealthResult[];
  rotated: boolean;
  kept: boolean;
  failure: Failure | undefined;
  stopError: string | undefined;
  warnings: string[];
}

export type StartEvent = { type: 'CANCEL' };

const COLD_CRASH_WARNING = 'QEMU crashed by itself during the cold boot: it is booted once more';
const NO_ROTATION_WARNING = 'rotation is off (--no-rotation): the guest runs with the placeholder secrets captured in the snapshot';

const start = setup({
  types: {
    context: {} as StartContext,
    events: {} as StartEvent,
    input: {} as StartInput,
    output: {} as StartOutput,
  },
  actors: {
    preflight: placeholder<PreflightResult>('start', 'preflight'),
    prepareImage: placeholder<ImageResult>('start', 'prepareImage'),
    chooseAccelerator: placeholder<AccelResult>('start', 'chooseAccelerator'),
    chooseSnapshot: placeholder<SnapshotChoice, { capture: boolean }>('start', 'chooseSnapshot'),
    awaitCapture: placeholder<CaptureWait>('start', 'awaitCapture'),
    setAsideSnapshot: placeholder<{ setAside: string | undefined; capturing: boolean }, { reason: string }>('start', 'setAsideSnapshot'),
    pullSnapshot: placeholder<PullResult>('start', 'pullSnapshot'),
    findSuspended: placeholder<SuspendedChoice>('start', 'findSuspended'),
    coldBoot: coldBootMachine,
    capture: captureMachine,
    resume: resumeMachine,
  },
  actions: {
    recordFailure: assign((_, failure: Failure) => ({ failure })),
    recordInterrupt: assign({ interrupted: true }),
    enterStep: assign(({ context }, params: { step: string }) => ({ steps: [...context.steps, params.step] })),
    recordUsable: assign((_, choice: SnapshotChoice) => ({ failuresInARow: choice.status === 'usable' ? choice.failuresInARow : 0 })),
    // An unusable snapshot counts as the fast path failing: its reason is the fallback's.
    recordChoice: assign(({ context }, choice: SnapshotChoice) => ({
      captureAfterCold: context.capture,
      fallbackTaken: choice.status === 'setAside',
      fallbackReason: choice.status === 'setAside' ? choice.reason : undefined,
    })),
    // Each of these runs where a guard has told the outcome apart; they narrow it again for the compiler.
    recordHealthy: assign((_, output: ResumeOutput | ColdBootOutput) => (output.outcome === 'failed' ? {} : { pid: output.pid, health: output.health, rotated: output.rotated })),
    recordKept: assign(({ context }, output: CaptureOutput) =>
      output.outcome === 'kept' ? { pid: output.pid, health: output.health, rotated: output.rotated, warnings: [...context.warnings, output.warning] } : {},
    ),
    recordWoken: assign(({ context }) => ({ kept: context.keptSecrets })),
    recordWakeable: assign((_, choice: SuspendedChoice) => ({ keptSecrets: choice.status === 'wakeable' && choice.secrets })),
    // Not the fast path failing: the state is set aside and the start goes on as if there were none.
    warnSuspendedSetAside: assign(({ context }, choice: SuspendedChoice) =>
      choice.status === 'setAside' ? { warnings: [...context.warnings, `the suspended state was set aside: ${choice.reason}`] } : {},
    ),
    warnWakeFailed: assign(({ context }, output: ResumeOutput) => ({
      warnings: [
        ...context.warnings,
        `waking the suspended state failed, so it was set aside: ${output.outcome === 'failed' ? `${output.failure.state}: ${output.failure.message}` : 'no result'}`,
      ],
      steps: context.steps.filter((step) => step !== 'wake'),
      keptSecrets: false,
    })),
    // The fallback edge to a cold boot: one that replaces a set-aside snapshot captures again.
    fallBack: assign((_, output: ChildOutput) => fallbackEdge(output, false)),
    fallBackToCapture: assign(({ context }, output: ChildOutput) => fallbackEdge(output, context.capture)),
    // Another start took the capture lock meanwhile: this one boots cold and leaves the capture to it.
    recordCaptureLock: assign(({ context }, aside: { capturing: boolean }) => ({ captureAfterCold: context.captureAfterCold && aside.capturing })),
    skipCapture: assign({ captureAfterCold: false }),
    // A fresh snapshot: no resume of it has failed yet.
    recordPulled: assign({ failuresInARow: 0 }),
    // A pull that did not give a usable snapshot is not the fast path failing: the cold boot (and capture) runs, with a warning.
    warnPullFailed: assign(({ context }, reason: string) => ({
      warnings: [...context.warnings, `the snapshot pull failed, so the guest booted cold: ${reason}`],
      // The path names the steps that made the VM that runs: a failed pull made none of it.
      steps: context.steps.filter((step) => step !== 'pull'),
    })),
    // The crashed cold boot made nothing that runs: its step leaves the path, the next entry adds it back.
    bootAgainAfterCrash: assign(({ context }, output: ColdBootOutput) => ({
      bootedAgainAfterCrash: true,
      steps: context.steps.slice(0, -1),
      warnings: [...context.warnings, `${crashWarning(output)}, so the cold boot was tried once more`],
    })),
    recordColdFailure: assign((_, output: ColdBootOutput) => (output.outcome === 'failed' ? { failure: output.failure, stopError: output.stopError } : {})),
    recordNoFallback: assign((_, output: ChildOutput) =>
      output.outcome === 'failed' ? { failure: noFallbackFailure(output.failure, output.stopError), stopError: output.stopError } : {},
    ),
  },
  guards: {
    forceCold: ({ context }) => context.forceCold,
    snapshotUsable: (_, choice: SnapshotChoice) => choice.status === 'usable',
    otherCapturing: (_, choice: SnapshotChoice) => choice.status === 'capturing',
    wakeable: (_, choice: SuspendedChoice) => choice.status === 'wakeable',
    shouldPull: ({ context }, choice: SnapshotChoice) => context.pull && (choice.status === 'missing' || choice.status === 'setAside'),
    pulled: (_, result: PullResult) => result.status === 'usable',
    resumeHealthy: (_, output: ResumeOutput) => output.outcome === 'healthy',
    coldReady: (_, output: ColdBootOutput) => output.outcome === 'ready',
    // QEMU's own crash (a TCG assertion, say) is not the guest's fault: one more boot, never after Ctrl-C.
    firstColdCrash: ({ context }, output: ColdBootOutput) =>
      output.outcome === 'failed' && output.failure.code === 'E_QEMU_CRASHED' && output.stopError === undefined && !context.interrupted && !context.bootedAgainAfterCrash,
    coldReadyToCapture: ({ context }, output: ColdBootOutput) => output.outcome === 'ready' && context.captureAfterCold,
    captured: (_, output: CaptureOutput) => output.outcome === 'captured',
    keptAfterCapture: (_, output: CaptureOutput) => output.outcome === 'kept',
    fallbackAllowed: ({ context }, output: ChildOutput) => fallbackAllowed(context, output),
    // The set-aside decision (invariant 6): the fallback is allowed and the failure is the snapshot's own.
    // …or its guest failed after `cont` again: the second resume in a row to do so.
    snapshotDamaged: ({ context }, output: ResumeOutput) =>
      fallbackAllowed(context, output) && (snapshotDamaged(output.failure) || (failedAfterCont(output.failure) && context.failuresInARow + 1 >= FAILURES_BEFORE_SET_ASIDE)),
  },
  delays: boundDelays('preflightMs', 'imageMs', 'accelMs', 'chooseMs', 'captureWaitMs', 'setAsideMs', 'pullMs'),
});

const { bounded, failOnError, failOnCancel } = boundedSteps(start);

/**
 * The root machine behind `warmvm start`: preflight → image → accelerator → choosing, then
 * resume when a matching snapshot exists, else coldBoot (→ capture → resume on a first start).
 * Any resume failure stops that QEMU (inside the resume machine) and takes the fallback edge to
 * a cold boot, once. Every run ends in `running` or `failed`. A child machine owns the QEMU it
 * launched: Ctrl-C is passed to it, and it stops that QEMU before the run ends.
 */
export const startMachine = start.createMachine({
  id: 'start',
  context: ({ input }) => ({
    bounds: input.bounds,
    forceCold: input.forceCold,
    capture: input.capture && !input.forceCold,
    rotation: input.rotation,
    captureAfterCold: false,
    pull: (input.pull ?? false) && !input.forceCold,
    keptSecrets: false,
    fallbackTaken: false,
    fallbackReason: undefined,
    failuresInARow: 0,
    interrupted: false,
    bootedAgainAfterCrash: false,
    steps: [],
    pid: undefined,
    health: [],
    rotated: false,
    kept: false,
    failure: undefined,
    stopError: undefined,
    warnings: input.rotation ? [] : [NO_ROTATION_WARNING],
  }),
  initial: 'preflight',
  states: {
    preflight: bounded({
      src: 'preflight',
      state: 'start.preflight',
      done: 'image',
      bound: 'preflightMs',
      waitingFor: 'checking QEMU and the instance',
      hint: 'run "warmvm doctor"',
      failTo: 'failed',
    }),
    image: bounded({
      src: 'prepareImage',
      state: 'start.image',
      done: 'accelerator',
      bound: 'imageMs',
      waitingFor: 'preparing the guest image',
      hint: 'run "warmvm guest build" to see its progress',
      failTo: 'failed',
    }),
    accelerator: bounded({
      src: 'chooseAccelerator',
      state: 'start.accelerator',
      done: 'suspended',
      bound: 'accelMs',
      waitingFor: 'proving an accelerator',
      hint: 'set "accel": "tcg" in the config',
      failTo: 'failed',
    }),
    // A state `stop --suspend` kept is woken before any snapshot is looked at; --cold leaves it for a later start.
    suspended: {
      always: { guard: 'forceCold', target: 'choosing' },
      ...bounded({
        src: 'findSuspended',
        state: 'start.suspended',
        done: [
          { guard: { type: 'wakeable', params: doneOutput }, target: 'waking', actions: { type: 'recordWakeable', params: doneOutput } },
          { target: 'choosing', actions: { type: 'warnSuspendedSetAside', params: doneOutput } },
        ],
        bound: 'chooseMs',
        waitingFor: "reading the instance's suspended state",
        hint: 'check the instance folder',
        failTo: 'failed',
      }),
    },
    // The resume machine on the suspended state: its own RAM, disk and secrets. A failed wake is set aside, and the start goes on to the snapshot.
    waking: {
      entry: { type: 'enterStep', params: { step: 'wake' } },
      invoke: {
        id: 'resume',
        src: 'resume',
        input: ({ context }) => ({ bounds: context.bounds, rotation: context.rotation && !context.keptSecrets, kept: context.keptSecrets }),
        onDone: [
          { guard: { type: 'resumeHealthy', params: doneOutput }, target: 'running', actions: [{ type: 'recordHealthy', params: doneOutput }, 'recordWoken'] },
          { guard: { type: 'fallbackAllowed', params: doneOutput }, target: 'choosing', actions: { type: 'warnWakeFailed', params: doneOutput } },
          { target: 'failed', actions: { type: 'recordNoFallback', params: doneOutput } },
        ],
        onError: failOnError('failed', 'start.waking'),
      },
      on: { CANCEL: { actions: ['recordInterrupt', sendTo('resume', { type: 'CANCEL' })] } },
    },
    choosing: {
      // --cold: the store is neither read nor changed.
      always: { guard: 'forceCold', target: 'coldBoot' },
      ...bounded({
        src: 'chooseSnapshot',
        state: 'start.choosing',
        input: ({ context }) => ({ capture: context.capture }),
        done: [
          { guard: { type: 'snapshotUsable', params: doneOutput }, target: 'resume', actions: { type: 'recordUsable', params: doneOutput } },
          { guard: { type: 'otherCapturing', params: doneOutput }, target: 'awaitingCapture' },
          { guard: { type: 'shouldPull', params: doneOutput }, target: 'pulling', actions: { type: 'recordChoice', params: doneOutput } },
          { target: 'coldBoot', actions: { type: 'recordChoice', params: doneOutput } },
        ],
        bound: 'chooseMs',
        waitingFor: 'reading the snapshot store',
        hint: 'check the warmvm home',
        failTo: 'failed',
      }),
    },
    // Two starts of one config never both capture: this one resumes what the other captures.
    awaitingCapture: bounded({
      src: 'awaitCapture',
      state: 'start.awaitingCapture',
      done: [
        { guard: { type: 'snapshotUsable', params: doneOutput }, target: 'resume', actions: { type: 'recordUsable', params: doneOutput } },
        { guard: { type: 'shouldPull', params: doneOutput }, target: 'pulling', actions: { type: 'recordChoice', params: doneOutput } },
        { target: 'coldBoot', actions: { type: 'recordChoice', params: doneOutput } },
      ],
      bound: 'captureWaitMs',
      waitingFor: 'another start capturing a snapshot of this config',
      hint: 'see that start\'s trace; "warmvm list" shows the instances',
      failTo: 'failed',
    }),
    // No usable snapshot here: one from the config's registry, under the capture lock; any failure boots cold instead.
    pulling: {
      entry: { type: 'enterStep', params: { step: 'pull' } },
      invoke: {
        src: 'pullSnapshot',
        onDone: [
          { guard: { type: 'pulled', params: doneOutput }, target: 'resume', actions: 'recordPulled' },
          { target: 'coldBoot', actions: { type: 'warnPullFailed', params: ({ event }) => (event.output.status === 'failed' ? event.output.reason : 'no usable snapshot') } },
        ],
        onError: { target: 'coldBoot', actions: { type: 'warnPullFailed', params: ({ event }) => (event.error instanceof Error ? event.error.message : String(event.error)) } },
      },
      after: { pullBound: { target: 'coldBoot', actions: { type: 'warnPullFailed', params: ({ context }) => `it did not finish within ${context.bounds.pullMs / 1000} s` } } },
      on: { CANCEL: failOnCancel('failed', 'start.pulling') },
    },
    resume: {
      entry: { type: 'enterStep', params: { step: 'resume' } },
      invoke: {
        id: 'resume',
        src: 'resume',
        input: ({ context }) => ({ bounds: context.bounds, rotation: context.rotation }),
        onDone: [
          { guard: { type: 'resumeHealthy', params: doneOutput }, target: 'running', actions: { type: 'recordHealthy', params: doneOutput } },
          { guard: { type: 'snapshotDamaged', params: doneOutput }, target: 'settingAside', actions: { type: 'fallBackToCapture', params: doneOutput } },
          { guard: { type: 'fallbackAllowed', params: doneOutput }, target: 'coldBoot', actions: { type: 'fallBack', params: doneOutput } },
          { target: 'failed', actions: { type: 'recordNoFallback', params: doneOutput } },
        ],
        onError: failOnError('failed', 'start.resume'),
      },
      on: { CANCEL: { actions: ['recordInterrupt', sendTo('resume', { type: 'CANCEL' })] } },
    },
    settingAside: {
      invoke: {
        src: 'setAsideSnapshot',
        input: ({ context }) => ({ reason: context.fallbackReason ?? 'the resume failed' }),
        onDone: { target: 'coldBoot', actions: { type: 'recordCaptureLock', params: doneOutput } },
        // Not fatal, but with no capture lock known to be held the cold boot leaves the capture to another start.
        onError: { target: 'coldBoot', actions: 'skipCapture' },
      },
      after: { setAsideBound: { target: 'coldBoot', actions: 'skipCapture' } },
      on: { CANCEL: failOnCancel('failed', 'start.settingAside') },
    },
    coldBoot: {
      entry: { type: 'enterStep', params: { step: 'cold' } },
      invoke: {
        id: 'coldBoot',
        src: 'coldBoot',
        input: ({ context }) => ({ bounds: context.bounds, rotation: context.rotation, capturing: context.captureAfterCold }),
        onDone: [
          { guard: { type: 'coldReadyToCapture', params: doneOutput }, target: 'capture' },
          { guard: { type: 'coldReady', params: doneOutput }, target: 'running', actions: { type: 'recordHealthy', params: doneOutput } },
          { guard: { type: 'firstColdCrash', params: doneOutput }, target: 'bootingAgain', actions: { type: 'bootAgainAfterCrash', params: doneOutput } },
          { target: 'failed', actions: { type: 'recordColdFailure', params: doneOutput } },
        ],
        onError: failOnError('failed', 'start.coldBoot'),
      },
      on: { CANCEL: { actions: ['recordInterrupt', sendTo('coldBoot', { type: 'CANCEL' })] } },
    },
    // Passed through between a cold boot whose QEMU crashed by itself and the one more it gets: the trace shows both boots.
    bootingAgain: {
      meta: { warning: COLD_CRASH_WARNING },
      always: 'coldBoot',
    },
    capture: {
      entry: { type: 'enterStep', params: { step: 'capture' } },
      invoke: {
        id: 'capture',
        src: 'capture',
        input: ({ context }) => ({ bounds: context.bounds, keep: { rotation: context.rotation } }),
        onDone: [
          { guard: { type: 'captured', params: doneOutput }, target: 'resume' },
          // Failed with the VM only paused: that VM ends healthy, the failure a warning.
          { guard: { type: 'keptAfterCapture', params: doneOutput }, target: 'running', actions: { type: 'recordKept', params: doneOutput } },
          { guard: { type: 'fallbackAllowed', params: doneOutput }, target: 'coldBoot', actions: { type: 'fallBack', params: doneOutput } },
          { target: 'failed', actions: { type: 'recordNoFallback', params: doneOutput } },
        ],
        onError: failOnError('failed', 'start.capture'),
      },
      on: { CANCEL: { actions: ['recordInterrupt', sendTo('capture', { type: 'CANCEL' })] } },
    },
    running: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }): StartOutput =>
    context.failure === undefined && context.pid !== undefined
      ? {
          outcome: 'healthy',
          pid: context.pid,
          health: context.health,
          path: context.steps.join('+'),
          fallbackReason: context.fallbackReason,
          rotated: context.rotated,
          kept: context.kept,
          warnings: context.warnings,
        }
      : {
          outcome: 'failed',
          failure: context.failure ?? { state: 'start', code: 'E_UNEXPECTED', message: 'start ended without a result', hint: undefined },
          stopError: context.stopError,
          path: context.steps.join('+'),
          fallbackReason: context.fallbackReason,
          warnings: context.warnings,
        },
});

/** "QEMU crashed in coldBoot.booting (QEMU crashed (killed by SIGABRT) while …)": the message's first line, without QEMU's log. */
function crashWarning(output: ColdBootOutput): string {
  if (output.outcome !== 'failed') return 'QEMU crashed';
  return `QEMU crashed in ${output.failure.state} (${output.failure.message.split('; it said:')[0]?.split('\n')[0]})`;
}
