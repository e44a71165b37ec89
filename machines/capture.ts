import { assign, fromPromise, setup } from 'xstate';
import { interruptedFailure, timeoutFailure, toFailure, type Failure } from './failure.js';

export interface CaptureBounds {
  pauseMs: number;
  migrateMs: number;
  quitMs: number;
  storeMs: number;
  recoverMs: number;
}

export interface CaptureInput {
  bounds: CaptureBounds;
}

export interface Paused {
  runstate: string;
}
export interface Migrated {
  apparentBytes: number;
  ms: number;
}
export interface Stored {
  snapshot: string;
  compressedBytes: number;
}
export interface Recovered {
  /** What was dropped: the half-made capture, the paused QEMU. */
  dropped: string[];
}

export type CaptureOutput =
  | { outcome: 'captured'; snapshot: string }
  | { outcome: 'failed'; failure: Failure };

interface CaptureContext {
  bounds: CaptureBounds;
  snapshot: string | undefined;
  failure: Failure | undefined;
}

function placeholder<TOutput>(name: string) {
  return fromPromise<TOutput, void>(async () => {
    throw new Error(`actor ${name} was not provided to the capture machine`);
  });
}

/**
 * Capture a healthy VM: stopping (vCPUs paused) → migrating (RAM and devices to a file beside the
 * store) → quitting → storing (compress, freeze the disk, manifest, rename into place) → captured.
 * Any failure goes to `recovering`, which drops the half-made capture (the store keeps its old
 * snapshot) and stops the QEMU, so that the root machine's fallback may launch another.
 */
export const captureMachine = setup({
  types: {
    context: {} as CaptureContext,
    events: {} as { type: 'CANCEL' },
    input: {} as CaptureInput,
    output: {} as CaptureOutput,
  },
  actors: {
    pauseVm: placeholder<Paused>('pauseVm'),
    migrateToFile: placeholder<Migrated>('migrateToFile'),
    quitQemu: placeholder<{ exited: boolean }>('quitQemu'),
    storeSnapshot: placeholder<Stored>('storeSnapshot'),
    recoverVm: placeholder<Recovered>('recoverVm'),
  },
  actions: {
    recordError: assign(({ event }, params: { state: string }) => ({ failure: toFailure(params.state, (event as unknown as { error: unknown }).error) })),
    recordBound: assign(({ context }, params: { state: string; bound: keyof CaptureBounds; waitingFor: string }) => ({
      failure: timeoutFailure(params.state, context.bounds[params.bound], params.waitingFor, 'the previous snapshot, if any, is kept; see qemu.log in the instance folder'),
    })),
    recordCancel: assign((_, params: { state: string }) => ({ failure: interruptedFailure(params.state) })),
  },
  delays: {
    pauseBound: ({ context }) => context.bounds.pauseMs,
    migrateBound: ({ context }) => context.bounds.migrateMs,
    quitBound: ({ context }) => context.bounds.quitMs,
    storeBound: ({ context }) => context.bounds.storeMs,
    recoverBound: ({ context }) => context.bounds.recoverMs,
  },
}).createMachine({
  id: 'capture',
  context: ({ input }) => ({ bounds: input.bounds, snapshot: undefined, failure: undefined }),
  initial: 'stopping',
  states: {
    stopping: {
      invoke: { src: 'pauseVm', onDone: 'migrating', onError: { target: 'recovering', actions: { type: 'recordError', params: { state: 'capture.stopping' } } } },
      after: { pauseBound: { target: 'recovering', actions: { type: 'recordBound', params: { state: 'capture.stopping', bound: 'pauseMs', waitingFor: 'QEMU pausing the vCPUs' } } } },
      on: { CANCEL: { target: 'recovering', actions: { type: 'recordCancel', params: { state: 'capture.stopping' } } } },
    },
    migrating: {
      invoke: { src: 'migrateToFile', onDone: 'quitting', onError: { target: 'recovering', actions: { type: 'recordError', params: { state: 'capture.migrating' } } } },
      after: { migrateBound: { target: 'recovering', actions: { type: 'recordBound', params: { state: 'capture.migrating', bound: 'migrateMs', waitingFor: 'the migration to file completing' } } } },
      on: { CANCEL: { target: 'recovering', actions: { type: 'recordCancel', params: { state: 'capture.migrating' } } } },
    },
    quitting: {
      invoke: { src: 'quitQemu', onDone: 'storing', onError: { target: 'recovering', actions: { type: 'recordError', params: { state: 'capture.quitting' } } } },
      after: { quitBound: { target: 'recovering', actions: { type: 'recordBound', params: { state: 'capture.quitting', bound: 'quitMs', waitingFor: 'QEMU exiting after quit' } } } },
      on: { CANCEL: { target: 'recovering', actions: { type: 'recordCancel', params: { state: 'capture.quitting' } } } },
    },
    storing: {
      invoke: {
        src: 'storeSnapshot',
        onDone: { target: 'captured', actions: assign({ snapshot: ({ event }) => event.output.snapshot }) },
        onError: { target: 'recovering', actions: { type: 'recordError', params: { state: 'capture.storing' } } },
      },
      after: { storeBound: { target: 'recovering', actions: { type: 'recordBound', params: { state: 'capture.storing', bound: 'storeMs', waitingFor: 'the snapshot being stored' } } } },
      on: { CANCEL: { target: 'recovering', actions: { type: 'recordCancel', params: { state: 'capture.storing' } } } },
    },
    captured: { type: 'final' },
    recovering: {
      invoke: {
        src: 'recoverVm',
        onDone: 'failed',
        onError: 'failed',
      },
      after: { recoverBound: 'failed' },
    },
    failed: { type: 'final' },
  },
  output: ({ context }): CaptureOutput =>
    context.failure === undefined && context.snapshot !== undefined
      ? { outcome: 'captured', snapshot: context.snapshot }
      : {
          outcome: 'failed',
          failure: context.failure ?? { state: 'capture', code: 'E_UNEXPECTED', message: 'capture ended without a result', hint: undefined },
        },
});
