import { assign, setup } from 'xstate';
import { placeholder } from './placeholder.js';
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
  | { outcome: 'failed'; failure: Failure; stopError: string | undefined };

interface CaptureContext {
  bounds: CaptureBounds;
  snapshot: string | undefined;
  failure: Failure | undefined;
  /** Recovering failed: the capture's QEMU may still run, so no other may be launched. */
  stopError: string | undefined;
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
    pauseVm: placeholder<Paused>('capture', 'pauseVm'),
    migrateToFile: placeholder<Migrated>('capture', 'migrateToFile'),
    quitQemu: placeholder<{ exited: boolean }>('capture', 'quitQemu'),
    storeSnapshot: placeholder<Stored>('capture', 'storeSnapshot'),
    recoverVm: placeholder<Recovered>('capture', 'recoverVm'),
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
  context: ({ input }) => ({ bounds: input.bounds, snapshot: undefined, failure: undefined, stopError: undefined }),
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
        onError: { target: 'failed', actions: assign({ stopError: ({ event }) => toFailure('capture.recovering', event.error).message }) },
      },
      after: { recoverBound: { target: 'failed', actions: assign({ stopError: ({ context }) => `recovering from the failed capture took longer than ${context.bounds.recoverMs} ms` }) } },
    },
    failed: { type: 'final' },
  },
  output: ({ context }): CaptureOutput =>
    context.failure === undefined && context.snapshot !== undefined
      ? { outcome: 'captured', snapshot: context.snapshot }
      : {
          outcome: 'failed',
          failure: context.failure ?? { state: 'capture', code: 'E_UNEXPECTED', message: 'capture ended without a result', hint: undefined },
          stopError: context.stopError,
        },
});
