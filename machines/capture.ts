import { assign, setup } from 'xstate';
import { boundDelays, boundedSteps } from './bounded.js';
import { placeholder } from './placeholder.js';
import { failedOutput, type Failure, type FailedOutput } from './failure.js';

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
  /** The device-state stream's size: the RAM stays in the memory file. */
  stateBytes: number;
  ms: number;
}
export interface Stored {
  snapshot: string;
  /** Bytes of the memory file that hold data (the rest are holes). */
  memoryDataBytes: number;
}
export interface Recovered {
  /** What was dropped: the half-made capture, the paused QEMU. */
  dropped: string[];
}

export type CaptureOutput = { outcome: 'captured'; snapshot: string } | FailedOutput;

interface CaptureContext {
  bounds: CaptureBounds;
  snapshot: string | undefined;
  failure: Failure | undefined;
  /** Recovering failed: the capture's QEMU may still run, so no other may be launched. */
  stopError: string | undefined;
}

const capture = setup({
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
    recordFailure: assign((_, failure: Failure) => ({ failure })),
    recordStopError: assign((_, stopError: string) => ({ stopError })),
    recordSnapshot: assign((_, snapshot: string) => ({ snapshot })),
  },
  delays: boundDelays('pauseMs', 'migrateMs', 'quitMs', 'storeMs', 'recoverMs'),
});

const { bounded, cleanup } = boundedSteps(capture, { hint: 'the previous snapshot, if any, is kept; see qemu.log in the instance folder' });

/**
 * Capture a healthy VM: stopping (vCPUs paused) → migrating (RAM and devices to a file beside the
 * store) → quitting → storing (compress, freeze the disk, manifest, rename into place) → captured.
 * Any failure goes to `recovering`, which drops the half-made capture (the store keeps its old
 * snapshot) and stops the QEMU, so that the root machine's fallback may launch another.
 */
export const captureMachine = capture.createMachine({
  id: 'capture',
  context: ({ input }) => ({ bounds: input.bounds, snapshot: undefined, failure: undefined, stopError: undefined }),
  initial: 'stopping',
  states: {
    stopping: bounded({ src: 'pauseVm', state: 'capture.stopping', done: 'migrating', bound: 'pauseMs', waitingFor: 'QEMU pausing the vCPUs', failTo: 'recovering' }),
    migrating: bounded({
      src: 'migrateToFile',
      state: 'capture.migrating',
      done: 'quitting',
      bound: 'migrateMs',
      waitingFor: 'the migration to file completing',
      failTo: 'recovering',
    }),
    quitting: bounded({ src: 'quitQemu', state: 'capture.quitting', done: 'storing', bound: 'quitMs', waitingFor: 'QEMU exiting after quit', failTo: 'recovering' }),
    storing: bounded({
      src: 'storeSnapshot',
      state: 'capture.storing',
      done: { target: 'captured', actions: { type: 'recordSnapshot', params: ({ event }) => event.output.snapshot } },
      bound: 'storeMs',
      waitingFor: 'the snapshot being stored',
      failTo: 'recovering',
    }),
    captured: { type: 'final' },
    recovering: cleanup({
      src: 'recoverVm',
      state: 'capture.recovering',
      bound: 'recoverMs',
      to: 'failed',
      late: (ms) => `recovering from the failed capture took longer than ${ms} ms`,
    }),
    failed: { type: 'final' },
  },
  output: ({ context }): CaptureOutput =>
    context.failure === undefined && context.snapshot !== undefined ? { outcome: 'captured', snapshot: context.snapshot } : failedOutput('capture', 'capture', context),
});
