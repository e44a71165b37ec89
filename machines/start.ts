import { assign, fromPromise, sendTo, setup } from 'xstate';
import { coldBootMachine, type ColdBootBounds, type ColdBootOutput, type HealthResult } from './cold-boot.js';
import { interruptedFailure, timeoutFailure, toFailure, type Failure } from './failure.js';

export interface StartBounds extends ColdBootBounds {
  preflightMs: number;
  imageMs: number;
  accelMs: number;
}

export interface StartInput {
  bounds: StartBounds;
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

export type StartOutput =
  | { outcome: 'running'; pid: number; health: HealthResult[] }
  | { outcome: 'failed'; failure: Failure; stopError: string | undefined };

interface StartContext {
  bounds: StartBounds;
  pid: number | undefined;
  health: HealthResult[];
  failure: Failure | undefined;
  stopError: string | undefined;
}

export type StartEvent = { type: 'CANCEL' };

function placeholder<TOutput>(name: string) {
  return fromPromise<TOutput, void>(async () => {
    throw new Error(`actor ${name} was not provided to the start machine`);
  });
}

/**
 * The root machine behind `warmvm start`: preflight → image → accelerator → choosing → a boot
 * → running, or failed with a reason. Only the cold path exists so far: `choosing` always picks it.
 */
export const startMachine = setup({
  types: {
    context: {} as StartContext,
    events: {} as StartEvent,
    input: {} as StartInput,
    output: {} as StartOutput,
  },
  actors: {
    preflight: placeholder<PreflightResult>('preflight'),
    prepareImage: placeholder<ImageResult>('prepareImage'),
    chooseAccelerator: placeholder<AccelResult>('chooseAccelerator'),
    coldBoot: coldBootMachine,
  },
  delays: {
    preflightBound: ({ context }) => context.bounds.preflightMs,
    imageBound: ({ context }) => context.bounds.imageMs,
    accelBound: ({ context }) => context.bounds.accelMs,
  },
}).createMachine({
  id: 'start',
  context: ({ input }) => ({ bounds: input.bounds, pid: undefined, health: [], failure: undefined, stopError: undefined }),
  initial: 'preflight',
  states: {
    preflight: {
      invoke: {
        src: 'preflight',
        onDone: { target: 'image' },
        onError: { target: 'failed', actions: assign({ failure: ({ event }) => toFailure('start.preflight', event.error) }) },
      },
      after: {
        preflightBound: {
          target: 'failed',
          actions: assign({ failure: ({ context }) => timeoutFailure('start.preflight', context.bounds.preflightMs, 'checking QEMU and the instance', 'run "warmvm doctor"') }),
        },
      },
      on: { CANCEL: { target: 'failed', actions: assign({ failure: () => interruptedFailure('start.preflight') }) } },
    },
    image: {
      invoke: {
        src: 'prepareImage',
        onDone: { target: 'accelerator' },
        onError: { target: 'failed', actions: assign({ failure: ({ event }) => toFailure('start.image', event.error) }) },
      },
      after: {
        imageBound: {
          target: 'failed',
          actions: assign({ failure: ({ context }) => timeoutFailure('start.image', context.bounds.imageMs, 'preparing the guest image', 'run "warmvm guest build" to see its progress') }),
        },
      },
      on: { CANCEL: { target: 'failed', actions: assign({ failure: () => interruptedFailure('start.image') }) } },
    },
    accelerator: {
      invoke: {
        src: 'chooseAccelerator',
        onDone: { target: 'choosing' },
        onError: { target: 'failed', actions: assign({ failure: ({ event }) => toFailure('start.accelerator', event.error) }) },
      },
      after: {
        accelBound: {
          target: 'failed',
          actions: assign({ failure: ({ context }) => timeoutFailure('start.accelerator', context.bounds.accelMs, 'proving an accelerator', 'set "accel": "tcg" in the config') }),
        },
      },
      on: { CANCEL: { target: 'failed', actions: assign({ failure: () => interruptedFailure('start.accelerator') }) } },
    },
    choosing: {
      always: { target: 'coldBoot' },
    },
    coldBoot: {
      invoke: {
        id: 'coldBoot',
        src: 'coldBoot',
        input: ({ context }) => ({ bounds: context.bounds }),
        onDone: [
          {
            guard: ({ event }) => event.output.outcome === 'ready',
            target: 'running',
            actions: assign(({ event }) => {
              const output = event.output as Extract<ColdBootOutput, { outcome: 'ready' }>;
              return { pid: output.pid, health: output.health };
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
        onError: { target: 'failed', actions: assign({ failure: ({ event }) => toFailure('start.coldBoot', event.error) }) },
      },
      // The child owns the QEMU it launched: it must stop it before the run ends.
      on: { CANCEL: { actions: sendTo('coldBoot', { type: 'CANCEL' }) } },
    },
    running: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }): StartOutput =>
    context.failure === undefined && context.pid !== undefined
      ? { outcome: 'running', pid: context.pid, health: context.health }
      : {
          outcome: 'failed',
          failure: context.failure ?? { state: 'start', code: 'E_UNEXPECTED', message: 'start ended without a result', hint: undefined },
          stopError: context.stopError,
        },
});
