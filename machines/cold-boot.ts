import { assign, setup } from 'xstate';
import { boundDelays, boundedSteps, doneOutput } from './bounded.js';
import { placeholder } from './placeholder.js';
import { failedOutput, type Failure, type FailedOutput } from './failure.js';

export interface ColdBootBounds {
  /** Host ports, the disk overlay and the runtime settings disk: quick work, bounded like a launch. */
  coldPrepareMs: number;
  launchMs: number;
  bootMs: number;
  rotateMs: number;
  healthMs: number;
  stopMs: number;
}

export interface ColdBootInput {
  bounds: ColdBootBounds;
  /** Give the guest fresh secrets before probing; off only by the user's choice (with a warning). */
  rotation: boolean;
  /** The VM is about to be captured: it keeps its placeholders on purpose, every resume rotates. */
  capturing: boolean;
}

/** What the actors report; kept small and free of secrets because it goes into traces. */
export interface PreparedBoot {
  /** How many host ports were chosen for the guest's forwards. */
  forwards: number;
  /** Whether a disk overlay was made over the image. */
  overlay: boolean;
  /** Whether the runtime settings disk was written. */
  runtimeDisk: boolean;
}
export interface LaunchResult {
  pid: number;
}
export interface GuestUp {
  runstate: string;
  agent: boolean;
}
export interface HealthResult {
  url: string;
  status: number | undefined;
}
export interface StopResult {
  how: string;
}
export interface RotateResult {
  /** How many secrets went in; never their values. */
  secrets: number;
  exitCode: number;
}

export type ColdBootOutput = { outcome: 'ready'; pid: number; health: HealthResult[]; rotated: boolean } | FailedOutput;

/** What a machine that launches a QEMU and brings it to healthy keeps about it: cold boot and resume. */
export interface GuestRun {
  pid: number | undefined;
  health: HealthResult[];
  rotated: boolean;
  failure: Failure | undefined;
  stopError: string | undefined;
}

/** A guest run before anything happened: no QEMU, no answers, nothing failed. */
export function newGuestRun(): GuestRun {
  return { pid: undefined, health: [], rotated: false, failure: undefined, stopError: undefined };
}

interface ColdBootContext extends GuestRun {
  bounds: ColdBootBounds;
  rotation: boolean;
  capturing: boolean;
}

export type ColdBootEvent = { type: 'CANCEL' };

export const COLD_UNROTATED_WARNING = 'rotation is off: the guest runs with the secrets its image boots with';

const HINTS = {
  coldPrepareMs: 'check the warmvm home and the image; see the trace',
  launchMs: 'see qemu.log in the instance folder',
  bootMs: 'see serial.log in the instance folder for how far the guest got; raise bounds.bootSeconds for a slow guest',
  rotateMs: "see serial.log; check the guest's rotate command",
  healthMs: 'see serial.log in the instance folder; check the health checks in the config',
} as const;

const coldBoot = setup({
  types: {
    context: {} as ColdBootContext,
    events: {} as ColdBootEvent,
    input: {} as ColdBootInput,
    output: {} as ColdBootOutput,
  },
  actors: {
    prepareBoot: placeholder<PreparedBoot>('coldBoot', 'prepareBoot'),
    launchQemu: placeholder<LaunchResult>('coldBoot', 'launchQemu'),
    waitForGuest: placeholder<GuestUp>('coldBoot', 'waitForGuest'),
    rotateSecrets: placeholder<RotateResult>('coldBoot', 'rotateSecrets'),
    probeHealth: placeholder<HealthResult[]>('coldBoot', 'probeHealth'),
    stopQemu: placeholder<StopResult>('coldBoot', 'stopQemu'),
  },
  actions: {
    recordFailure: assign((_, failure: Failure) => ({ failure })),
    recordStopError: assign((_, stopError: string) => ({ stopError })),
    recordPid: assign((_, pid: number) => ({ pid })),
    recordRotated: assign({ rotated: true }),
    recordHealth: assign((_, health: HealthResult[]) => ({ health })),
  },
  guards: {
    rotationWanted: ({ context }) => context.rotation,
    capturing: ({ context }) => context.capturing,
  },
  delays: boundDelays('coldPrepareMs', 'launchMs', 'bootMs', 'rotateMs', 'healthMs', 'stopMs'),
});

const { bounded, cleanup } = boundedSteps(coldBoot);

/**
 * Cold boot: preparing → launching → booting → (rotating) → probing → ready. Every wait is bounded;
 * every failure, a passed bound or Ctrl-C goes through `stopping`, so no QEMU outlives a failed boot
 * (stopping before anything was launched is fine: the stop actor finds nothing to stop).
 */
export const coldBootMachine = coldBoot.createMachine({
  id: 'coldBoot',
  context: ({ input }) => ({ bounds: input.bounds, rotation: input.rotation, capturing: input.capturing, ...newGuestRun() }),
  initial: 'preparing',
  states: {
    preparing: bounded({
      src: 'prepareBoot',
      state: 'coldBoot.preparing',
      done: 'launching',
      bound: 'coldPrepareMs',
      waitingFor: 'the host ports, runtime disk and disk overlay being ready',
      hint: HINTS.coldPrepareMs,
      failTo: 'stopping',
    }),
    launching: bounded({
      src: 'launchQemu',
      state: 'coldBoot.launching',
      done: { target: 'booting', actions: { type: 'recordPid', params: ({ event }) => event.output.pid } },
      bound: 'launchMs',
      waitingFor: 'QEMU opening its QMP socket',
      hint: HINTS.launchMs,
      failTo: 'stopping',
    }),
    booting: bounded({
      src: 'waitForGuest',
      state: 'coldBoot.booting',
      done: [{ guard: 'capturing', target: 'probing' }, { guard: 'rotationWanted', target: 'rotating' }, { target: 'unrotated' }],
      bound: 'bootMs',
      waitingFor: 'the guest agent answering',
      hint: HINTS.bootMs,
      failTo: 'stopping',
    }),
    rotating: bounded({
      src: 'rotateSecrets',
      state: 'coldBoot.rotating',
      done: { target: 'probing', actions: 'recordRotated' },
      bound: 'rotateMs',
      waitingFor: "the guest's rotate command exiting 0",
      hint: HINTS.rotateMs,
      failTo: 'stopping',
    }),
    // Passed through only when the user turned rotation off: the trace carries the warning.
    unrotated: {
      meta: { warning: COLD_UNROTATED_WARNING },
      always: 'probing',
    },
    probing: bounded({
      src: 'probeHealth',
      state: 'coldBoot.probing',
      done: { target: 'ready', actions: { type: 'recordHealth', params: doneOutput } },
      bound: 'healthMs',
      waitingFor: 'every health check answering',
      hint: HINTS.healthMs,
      failTo: 'stopping',
    }),
    ready: { type: 'final' },
    stopping: cleanup({ src: 'stopQemu', state: 'coldBoot.stopping', bound: 'stopMs', to: 'failed', late: (ms) => `QEMU did not stop within ${ms} ms` }),
    failed: { type: 'final' },
  },
  output: ({ context }): ColdBootOutput =>
    context.failure === undefined && context.pid !== undefined
      ? { outcome: 'ready', pid: context.pid, health: context.health, rotated: context.rotated }
      : failedOutput('coldBoot', 'cold boot', context),
});
