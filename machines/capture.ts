import { assign, setup } from 'xstate';
import { boundDelays, boundedSteps, delayOf, doneOutput } from './bounded.js';
import { placeholder } from './placeholder.js';
import { failedOutput, type Failure, type FailedOutput, QEMU_GONE, toFailure } from './failure.js';
import type { HealthResult, RotateResult } from './cold-boot.js';

export interface CaptureBounds {
  pauseMs: number;
  migrateMs: number;
  quitMs: number;
  storeMs: number;
  recoverMs: number;
  rotateMs: number;
  healthMs: number;
}

export interface CaptureInput {
  bounds: CaptureBounds;
  /**
   * A start's capture, of a VM it cold-booted for it: a failure before QEMU quits keeps that VM,
   * which rotates its secrets (when `rotation`) and is probed, and the start ends healthy on it.
   * Left out (`warmvm capture`), a failure only lets the VM run on as it was.
   */
  keep?: { rotation: boolean } | undefined;
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

export interface Continued {
  runstate: string;
  /** The kept VM's QEMU: the one the cold boot launched. */
  pid: number;
}

/** The capture failed, and the VM it paused runs on healthy: `warning` says why there is no snapshot. */
export interface KeptOutput {
  outcome: 'kept';
  pid: number;
  health: HealthResult[];
  rotated: boolean;
  warning: string;
}

export type CaptureOutput = { outcome: 'captured'; snapshot: string } | KeptOutput | FailedOutput;

/** In the trace, on the state a kept VM ends in; the capture's own failure is the event that led to continuing. */
export const KEPT_WARNING = 'the capture failed, so the VM it had paused runs on (booted cold, not resumed from a snapshot); the next start captures again';

interface CaptureContext {
  bounds: CaptureBounds;
  snapshot: string | undefined;
  failure: Failure | undefined;
  /** Recovering failed: the capture's QEMU may still run, so no other may be launched. */
  stopError: string | undefined;
  keep: { rotation: boolean } | undefined;
  /** The VM ended healthy in `kept`; `failure` is then the capture's, for the warning. */
  kept: boolean;
  pid: number | undefined;
  health: HealthResult[];
  rotated: boolean;
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
    continueVm: placeholder<Continued>('capture', 'continueVm'),
    rotateSecrets: placeholder<RotateResult>('capture', 'rotateSecrets'),
    probeHealth: placeholder<HealthResult[]>('capture', 'probeHealth'),
  },
  guards: {
    keeping: ({ context }) => context.keep !== undefined,
    // A step whose QEMU died under it leaves no VM to run again: recover at once, naming that step.
    keepingLiveVm: ({ context, event }) => context.keep !== undefined && !('error' in event && QEMU_GONE.has(toFailure('', event.error).code)),
    rotationWanted: ({ context }) => context.keep?.rotation === true,
  },
  actions: {
    recordFailure: assign((_, failure: Failure) => ({ failure })),
    recordStopError: assign((_, stopError: string) => ({ stopError })),
    recordSnapshot: assign((_, snapshot: string) => ({ snapshot })),
    recordRotated: assign({ rotated: true }),
    recordPid: assign((_, pid: number) => ({ pid })),
    recordHealth: assign((_, health: HealthResult[]) => ({ health, kept: true })),
  },
  delays: boundDelays('pauseMs', 'migrateMs', 'quitMs', 'storeMs', 'recoverMs', 'rotateMs', 'healthMs'),
});

const HINT = 'the previous snapshot, if any, is kept; see qemu.log in the instance folder';
const { bounded, cleanup, failOnError, boundTransition, failOnCancel } = boundedSteps(capture, { hint: HINT });

/**
 * A step while the VM is paused but QEMU has not quit: its error or bound goes to `continuing` when
 * the VM is kept (a start's capture), else to `recovering`; Ctrl-C always recovers (the person is
 * leaving, nothing is kept).
 */
function keepOnFailure(state: string, bound: 'pauseMs' | 'migrateMs', waitingFor: string) {
  return {
    onError: [{ guard: 'keepingLiveVm' as const, ...failOnError('continuing', state) }, failOnError('recovering', state)],
    after: {
      [delayOf(bound)]: [
        { guard: 'keeping' as const, ...boundTransition('continuing', state, bound, waitingFor, HINT) },
        boundTransition('recovering', state, bound, waitingFor, HINT),
      ],
    },
    on: { CANCEL: failOnCancel('recovering', state) },
  };
}

const pausing = keepOnFailure('capture.stopping', 'pauseMs', 'QEMU pausing the vCPUs');
const migrating = keepOnFailure('capture.migrating', 'migrateMs', 'the migration to file completing');

/**
 * Capture a healthy VM: stopping (vCPUs paused) → migrating (RAM and devices to a file beside the
 * store) → quitting → storing (compress, freeze the disk, manifest, rename into place) → captured.
 * A failure before QEMU quits, in a start's capture, keeps the VM: continuing (the half-made capture
 * dropped, the vCPUs running again) → rotating → probing → kept, healthy on the VM it had. Any other
 * failure goes to `recovering`, which drops the half-made capture (the store keeps its old snapshot)
 * and stops the QEMU, so that the root machine's fallback may launch another.
 */
export const captureMachine = capture.createMachine({
  id: 'capture',
  context: ({ input }) => ({
    bounds: input.bounds,
    snapshot: undefined,
    failure: undefined,
    stopError: undefined,
    keep: input.keep,
    kept: false,
    pid: undefined,
    health: [],
    rotated: false,
  }),
  initial: 'stopping',
  states: {
    stopping: { invoke: { src: 'pauseVm', onDone: 'migrating', onError: pausing.onError }, after: pausing.after, on: pausing.on },
    migrating: { invoke: { src: 'migrateToFile', onDone: 'quitting', onError: migrating.onError }, after: migrating.after, on: migrating.on },
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
    continuing: bounded({
      src: 'continueVm',
      state: 'capture.continuing',
      done: [
        { guard: 'rotationWanted', target: 'rotating', actions: { type: 'recordPid', params: ({ event }) => event.output.pid } },
        { target: 'probing', actions: { type: 'recordPid', params: ({ event }) => event.output.pid } },
      ],
      bound: 'recoverMs',
      waitingFor: 'QEMU running the paused VM again',
      failTo: 'recovering',
    }),
    rotating: bounded({
      src: 'rotateSecrets',
      state: 'capture.rotating',
      done: { target: 'probing', actions: 'recordRotated' },
      bound: 'rotateMs',
      waitingFor: "the guest's rotate command exiting 0",
      hint: "see serial.log; check the guest's rotate command",
      failTo: 'recovering',
    }),
    probing: bounded({
      src: 'probeHealth',
      state: 'capture.probing',
      done: { target: 'kept', actions: { type: 'recordHealth', params: doneOutput } },
      bound: 'healthMs',
      waitingFor: 'every health check answering',
      hint: 'see serial.log in the instance folder; check the health checks in the config',
      failTo: 'recovering',
    }),
    kept: { type: 'final', meta: { warning: KEPT_WARNING } },
    recovering: cleanup({
      src: 'recoverVm',
      state: 'capture.recovering',
      bound: 'recoverMs',
      to: 'failed',
      late: (ms) => `recovering from the failed capture took longer than ${ms} ms`,
    }),
    failed: { type: 'final' },
  },
  output: ({ context }): CaptureOutput => {
    if (context.failure === undefined && context.snapshot !== undefined) return { outcome: 'captured', snapshot: context.snapshot };
    if (context.kept && context.failure !== undefined && context.pid !== undefined) {
      const warning = `the capture failed in ${context.failure.state} (${context.failure.message}), so the VM it had paused runs on, booted cold; the next start captures again`;
      return { outcome: 'kept', pid: context.pid, health: context.health, rotated: context.rotated, warning };
    }
    return failedOutput('capture', 'capture', context);
  },
});
