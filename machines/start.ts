import { and, assign, not, sendTo, setup } from 'xstate';
import { captureMachine, type CaptureBounds, type CaptureOutput } from './capture.js';
import { coldBootMachine, type ColdBootBounds, type ColdBootOutput, type HealthResult } from './cold-boot.js';
import { placeholder } from './placeholder.js';
import { interruptedFailure, timeoutFailure, toFailure, type Failure } from './failure.js';
import { resumeMachine, type ResumeBounds, type ResumeOutput } from './resume.js';

export interface StartBounds extends ColdBootBounds, ResumeBounds, CaptureBounds {
  preflightMs: number;
  imageMs: number;
  accelMs: number;
  chooseMs: number;
  setAsideMs: number;
}

export interface StartInput {
  bounds: StartBounds;
  /** `--cold`: boot cold, no snapshot used or made. */
  forceCold: boolean;
  /** `--no-capture`: a cold boot is not followed by a capture. */
  capture: boolean;
  /** `--no-rotation`: keep the snapshot's placeholder secrets (loudly). */
  rotation: boolean;
}

/** Small, secret-free results: they are the events a trace records. */
export interface PreflightResult {
  qemuVersion: string;
  machineType: string;
}
export interface ImageResult {
  image: string;
  built: boolean;
}
export interface AccelResult {
  accel: string;
  reason: string;
}
/** What `choosing` found in the store; an unusable snapshot has already been set aside. */
export type SnapshotChoice = { status: 'usable' } | { status: 'missing' } | { status: 'setAside'; reason: string };

export type StartOutput =
  | { outcome: 'healthy'; pid: number; health: HealthResult[]; path: string; fallbackReason: string | undefined; rotated: boolean; warnings: string[] }
  | { outcome: 'failed'; failure: Failure; stopError: string | undefined; path: string; fallbackReason: string | undefined; warnings: string[] };

interface StartContext {
  bounds: StartBounds;
  forceCold: boolean;
  capture: boolean;
  rotation: boolean;
  /** Whether the cold boot in progress is followed by a capture. */
  captureAfterCold: boolean;
  fallbackTaken: boolean;
  fallbackReason: string | undefined;
  /** Ctrl-C reached a child: whatever it ends with, nothing new may start. */
  interrupted: boolean;
  /** The steps that made the VM that ends up running: `cold`, `capture`, `resume`. */
  steps: string[];
  pid: number | undefined;
  health: HealthResult[];
  rotated: boolean;
  failure: Failure | undefined;
  stopError: string | undefined;
  warnings: string[];
}

export type StartEvent = { type: 'CANCEL' };

/**
 * Resume failures that mean the snapshot itself is bad: it is set aside and captured anew. Only
 * while reading it (preparing) or loading it (incoming): a later failure says nothing about it.
 */
const SNAPSHOT_DAMAGE = new Set(['E_SNAPSHOT_CORRUPT', 'E_SNAPSHOT_MISSING', 'E_MIGRATION_INCOMING', 'E_NOT_PAUSED']);
const SNAPSHOT_READING_STATES = new Set(['resume.preparing', 'resume.incoming']);

function snapshotDamaged(failure: Failure): boolean {
  return SNAPSHOT_DAMAGE.has(failure.code) && SNAPSHOT_READING_STATES.has(failure.state);
}

const NO_ROTATION_WARNING = 'rotation is off (--no-rotation): the guest runs with the placeholder secrets captured in the snapshot';

/**
 * The root machine behind `warmvm start`: preflight → image → accelerator → choosing, then
 * resume when a matching snapshot exists, else coldBoot (→ capture → resume on a first start).
 * Any resume failure stops that QEMU (inside the resume machine) and takes the fallback edge to
 * a cold boot, once. Every run ends in `running` or `failed`.
 */
export const startMachine = setup({
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
    chooseSnapshot: placeholder<SnapshotChoice, { forceCold: boolean }>('start', 'chooseSnapshot'),
    setAsideSnapshot: placeholder<{ setAside: string | undefined }, { reason: string }>('start', 'setAsideSnapshot'),
    coldBoot: coldBootMachine,
    capture: captureMachine,
    resume: resumeMachine,
  },
  actions: {
    recordError: assign(({ event }, params: { state: string }) => ({ failure: toFailure(params.state, (event as unknown as { error: unknown }).error) })),
    recordBound: assign(({ context }, params: { state: string; bound: 'preflightMs' | 'imageMs' | 'accelMs' | 'chooseMs'; waitingFor: string; hint: string }) => ({
      failure: timeoutFailure(params.state, context.bounds[params.bound], params.waitingFor, params.hint),
    })),
    recordCancel: assign((_, params: { state: string }) => ({ failure: interruptedFailure(params.state) })),
    recordInterrupt: assign({ interrupted: true }),
    enterStep: assign(({ context }, params: { step: string }) => ({ steps: [...context.steps, params.step] })),
  },
  guards: {
    snapshotUsable: ({ event }) => (event as unknown as { output: { status: string } }).output.status === 'usable',
    fallbackLeft: ({ context }) => !context.fallbackTaken,
    interrupted: ({ context }) => context.interrupted,
    // A child whose QEMU could not be stopped: launching another would make two QEMUs at once.
    childStopped: ({ event }) => (event as unknown as { output: { stopError?: string } }).output.stopError === undefined,
    captureAfterCold: ({ context }) => context.captureAfterCold,
  },
  delays: {
    preflightBound: ({ context }) => context.bounds.preflightMs,
    imageBound: ({ context }) => context.bounds.imageMs,
    accelBound: ({ context }) => context.bounds.accelMs,
    chooseBound: ({ context }) => context.bounds.chooseMs,
    setAsideBound: ({ context }) => context.bounds.setAsideMs,
  },
}).createMachine({
  id: 'start',
  context: ({ input }) => ({
    bounds: input.bounds,
    forceCold: input.forceCold,
    capture: input.capture && !input.forceCold,
    rotation: input.rotation,
    captureAfterCold: false,
    fallbackTaken: false,
    fallbackReason: undefined,
    interrupted: false,
    steps: [],
    pid: undefined,
    health: [],
    rotated: false,
    failure: undefined,
    stopError: undefined,
    warnings: input.rotation ? [] : [NO_ROTATION_WARNING],
  }),
  initial: 'preflight',
  states: {
    preflight: {
      invoke: { src: 'preflight', onDone: 'image', onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'start.preflight' } } } },
      after: { preflightBound: { target: 'failed', actions: { type: 'recordBound', params: { state: 'start.preflight', bound: 'preflightMs', waitingFor: 'checking QEMU and the instance', hint: 'run "warmvm doctor"' } } } },
      on: { CANCEL: { target: 'failed', actions: { type: 'recordCancel', params: { state: 'start.preflight' } } } },
    },
    image: {
      invoke: { src: 'prepareImage', onDone: 'accelerator', onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'start.image' } } } },
      after: { imageBound: { target: 'failed', actions: { type: 'recordBound', params: { state: 'start.image', bound: 'imageMs', waitingFor: 'preparing the guest image', hint: 'run "warmvm guest build" to see its progress' } } } },
      on: { CANCEL: { target: 'failed', actions: { type: 'recordCancel', params: { state: 'start.image' } } } },
    },
    accelerator: {
      invoke: { src: 'chooseAccelerator', onDone: 'choosing', onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'start.accelerator' } } } },
      after: { accelBound: { target: 'failed', actions: { type: 'recordBound', params: { state: 'start.accelerator', bound: 'accelMs', waitingFor: 'proving an accelerator', hint: 'set "accel": "tcg" in the config' } } } },
      on: { CANCEL: { target: 'failed', actions: { type: 'recordCancel', params: { state: 'start.accelerator' } } } },
    },
    choosing: {
      // --cold: the store is neither read nor changed.
      always: { guard: ({ context }) => context.forceCold, target: 'coldBoot' },
      invoke: {
        src: 'chooseSnapshot',
        input: ({ context }) => ({ forceCold: context.forceCold }),
        onDone: [
          { guard: 'snapshotUsable', target: 'resume' },
          {
            target: 'coldBoot',
            actions: assign(({ context, event }) => {
              const choice = event.output;
              const setAside = choice.status === 'setAside';
              return {
                captureAfterCold: context.capture,
                // An unusable snapshot counts as the fast path failing: its reason is the fallback's.
                fallbackTaken: setAside,
                fallbackReason: setAside ? choice.reason : undefined,
              };
            }),
          },
        ],
        onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'start.choosing' } } },
      },
      after: { chooseBound: { target: 'failed', actions: { type: 'recordBound', params: { state: 'start.choosing', bound: 'chooseMs', waitingFor: 'reading the snapshot store', hint: 'check the warmvm home' } } } },
      on: { CANCEL: { target: 'failed', actions: { type: 'recordCancel', params: { state: 'start.choosing' } } } },
    },
    resume: {
      entry: { type: 'enterStep', params: { step: 'resume' } },
      invoke: {
        id: 'resume',
        src: 'resume',
        input: ({ context }) => ({ bounds: context.bounds, rotation: context.rotation }),
        onDone: [
          {
            guard: ({ event }) => event.output.outcome === 'healthy',
            target: 'running',
            actions: assign(({ event }) => {
              const output = event.output as Extract<ResumeOutput, { outcome: 'healthy' }>;
              return { pid: output.pid, health: output.health, rotated: output.rotated };
            }),
          },
          {
            guard: ({ context, event }) =>
              !context.fallbackTaken && !context.interrupted && event.output.outcome === 'failed' && event.output.stopError === undefined && snapshotDamaged(event.output.failure),
            target: 'settingAside',
            actions: assign(({ context, event }) => fallBack(context, (event.output as Extract<ResumeOutput, { outcome: 'failed' }>).failure, context.capture)),
          },
          {
            guard: and(['fallbackLeft', 'childStopped', not('interrupted')]),
            target: 'coldBoot',
            actions: assign(({ context, event }) => fallBack(context, (event.output as Extract<ResumeOutput, { outcome: 'failed' }>).failure, false)),
          },
          {
            target: 'failed',
            actions: assign(({ event }) => {
              const output = event.output as Extract<ResumeOutput, { outcome: 'failed' }>;
              return { failure: noFallbackFailure(output.failure, output.stopError), stopError: output.stopError };
            }),
          },
        ],
        onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'start.resume' } } },
      },
      on: { CANCEL: { actions: ['recordInterrupt', sendTo('resume', { type: 'CANCEL' })] } },
    },
    settingAside: {
      invoke: {
        src: 'setAsideSnapshot',
        input: ({ context }) => ({ reason: context.fallbackReason ?? 'the resume failed' }),
        onDone: 'coldBoot',
        // Not fatal: the cold boot's capture replaces the snapshot anyway.
        onError: 'coldBoot',
      },
      after: { setAsideBound: 'coldBoot' },
      on: { CANCEL: { target: 'failed', actions: { type: 'recordCancel', params: { state: 'start.settingAside' } } } },
    },
    coldBoot: {
      entry: { type: 'enterStep', params: { step: 'cold' } },
      invoke: {
        id: 'coldBoot',
        src: 'coldBoot',
        input: ({ context }) => ({ bounds: context.bounds, rotation: context.rotation, capturing: context.captureAfterCold }),
        onDone: [
          {
            guard: ({ context, event }) => event.output.outcome === 'ready' && context.captureAfterCold,
            target: 'capture',
          },
          {
            guard: ({ event }) => event.output.outcome === 'ready',
            target: 'running',
            actions: assign(({ event }) => {
              const output = event.output as Extract<ColdBootOutput, { outcome: 'ready' }>;
              return { pid: output.pid, health: output.health, rotated: output.rotated };
            }),
          },
          {
            target: 'failed',
            actions: assign(({ event }) => {
              const output = event.output as Extract<ColdBootOutput, { outcome: 'failed' }>;
              return { failure: output.failure, stopError: output.stopError };
            }),
          },
        ],
        onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'start.coldBoot' } } },
      },
      // The child owns the QEMU it launched: it must stop it before the run ends.
      on: { CANCEL: { actions: ['recordInterrupt', sendTo('coldBoot', { type: 'CANCEL' })] } },
    },
    capture: {
      entry: { type: 'enterStep', params: { step: 'capture' } },
      invoke: {
        id: 'capture',
        src: 'capture',
        input: ({ context }) => ({ bounds: context.bounds }),
        onDone: [
          { guard: ({ event }) => event.output.outcome === 'captured', target: 'resume' },
          {
            guard: and(['fallbackLeft', 'childStopped', not('interrupted')]),
            target: 'coldBoot',
            actions: assign(({ context, event }) => fallBack(context, (event.output as Extract<CaptureOutput, { outcome: 'failed' }>).failure, false)),
          },
          {
            target: 'failed',
            actions: assign(({ event }) => {
              const output = event.output as Extract<CaptureOutput, { outcome: 'failed' }>;
              return { failure: noFallbackFailure(output.failure, output.stopError), stopError: output.stopError };
            }),
          },
        ],
        onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'start.capture' } } },
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

/** A failure the fallback does not follow: says why, when it is because a QEMU may still run. */
function noFallbackFailure(failure: Failure, stopError: string | undefined): Failure {
  if (stopError === undefined) return failure;
  return {
    ...failure,
    message: `${failure.message}; its QEMU could not be stopped, so no cold boot was tried (two QEMUs of one instance must never run at once)`,
    hint: 'run "warmvm stop" (it kills a QEMU that ignores SIGTERM), then start again',
  };
}

/** Taking the fallback edge: note why, forget the failed steps, decide whether to capture again. */
function fallBack(context: StartContext, failure: Failure, captureAgain: boolean): Partial<StartContext> {
  return {
    fallbackTaken: true,
    fallbackReason: `${failure.state}: ${failure.message}`,
    steps: [],
    captureAfterCold: captureAgain,
    warnings: context.warnings,
  };
}
