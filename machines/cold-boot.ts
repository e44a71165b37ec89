import { assign, setup } from 'xstate';
import { placeholder } from './placeholder.js';
import { interruptedFailure, timeoutFailure, toFailure, type Failure } from './failure.js';

export interface ColdBootBounds {
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

export type ColdBootOutput =
  | { outcome: 'ready'; pid: number; health: HealthResult[]; rotated: boolean }
  | { outcome: 'failed'; failure: Failure; stopError: string | undefined };

interface ColdBootContext {
  bounds: ColdBootBounds;
  rotation: boolean;
  capturing: boolean;
  pid: number | undefined;
  health: HealthResult[];
  rotated: boolean;
  failure: Failure | undefined;
  stopError: string | undefined;
}

export type ColdBootEvent = { type: 'CANCEL' };

export const COLD_UNROTATED_WARNING = 'rotation is off: the guest runs with the secrets its image boots with';

const HINTS = {
  launchMs: 'see qemu.log in the instance folder',
  bootMs: 'see serial.log in the instance folder for how far the guest got; raise bounds.bootSeconds for a slow guest',
  rotateMs: "see serial.log; check the guest's rotate command",
  healthMs: 'see serial.log in the instance folder; check the health checks in the config',
  stopMs: 'see qemu.log',
} as const;

/**
 * Cold boot: launching → booting → (rotating) → probing → ready. Every wait is bounded; every
 * failure, a passed bound or Ctrl-C goes through `stopping`, so no QEMU outlives a failed boot.
 */
export const coldBootMachine = setup({
  types: {
    context: {} as ColdBootContext,
    events: {} as ColdBootEvent,
    input: {} as ColdBootInput,
    output: {} as ColdBootOutput,
  },
  actors: {
    launchQemu: placeholder<LaunchResult>('coldBoot', 'launchQemu'),
    waitForGuest: placeholder<GuestUp>('coldBoot', 'waitForGuest'),
    rotateSecrets: placeholder<RotateResult>('coldBoot', 'rotateSecrets'),
    probeHealth: placeholder<HealthResult[]>('coldBoot', 'probeHealth'),
    stopQemu: placeholder<StopResult>('coldBoot', 'stopQemu'),
  },
  actions: {
    recordError: assign(({ event }, params: { state: string }) => ({ failure: toFailure(params.state, (event as unknown as { error: unknown }).error) })),
    recordBound: assign(({ context }, params: { state: string; bound: keyof typeof HINTS; waitingFor: string }) => ({
      failure: timeoutFailure(params.state, context.bounds[params.bound], params.waitingFor, HINTS[params.bound]),
    })),
    recordCancel: assign((_, params: { state: string }) => ({ failure: interruptedFailure(params.state) })),
  },
  guards: {
    rotationWanted: ({ context }) => context.rotation,
    capturing: ({ context }) => context.capturing,
  },
  delays: {
    launchBound: ({ context }) => context.bounds.launchMs,
    bootBound: ({ context }) => context.bounds.bootMs,
    rotateBound: ({ context }) => context.bounds.rotateMs,
    healthBound: ({ context }) => context.bounds.healthMs,
    stopBound: ({ context }) => context.bounds.stopMs,
  },
}).createMachine({
  id: 'coldBoot',
  context: ({ input }) => ({ bounds: input.bounds, rotation: input.rotation, capturing: input.capturing, pid: undefined, health: [], rotated: false, failure: undefined, stopError: undefined }),
  initial: 'launching',
  states: {
    launching: {
      invoke: {
        src: 'launchQemu',
        onDone: { target: 'booting', actions: assign({ pid: ({ event }) => event.output.pid }) },
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'coldBoot.launching' } } },
      },
      after: { launchBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'coldBoot.launching', bound: 'launchMs', waitingFor: 'QEMU opening its QMP socket' } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'coldBoot.launching' } } } },
    },
    booting: {
      invoke: {
        src: 'waitForGuest',
        onDone: [{ guard: 'capturing', target: 'probing' }, { guard: 'rotationWanted', target: 'rotating' }, { target: 'unrotated' }],
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'coldBoot.booting' } } },
      },
      after: { bootBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'coldBoot.booting', bound: 'bootMs', waitingFor: 'the guest agent answering' } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'coldBoot.booting' } } } },
    },
    rotating: {
      invoke: {
        src: 'rotateSecrets',
        onDone: { target: 'probing', actions: assign({ rotated: true }) },
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'coldBoot.rotating' } } },
      },
      after: { rotateBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'coldBoot.rotating', bound: 'rotateMs', waitingFor: "the guest's rotate command exiting 0" } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'coldBoot.rotating' } } } },
    },
    // Passed through only when the user turned rotation off: the trace carries the warning.
    unrotated: {
      meta: { warning: COLD_UNROTATED_WARNING },
      always: 'probing',
    },
    probing: {
      invoke: {
        src: 'probeHealth',
        onDone: { target: 'ready', actions: assign({ health: ({ event }) => event.output }) },
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'coldBoot.probing' } } },
      },
      after: { healthBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'coldBoot.probing', bound: 'healthMs', waitingFor: 'every health check answering' } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'coldBoot.probing' } } } },
    },
    ready: { type: 'final' },
    stopping: {
      invoke: {
        src: 'stopQemu',
        onDone: { target: 'failed' },
        onError: { target: 'failed', actions: assign({ stopError: ({ event }) => toFailure('coldBoot.stopping', event.error).message }) },
      },
      after: {
        stopBound: { target: 'failed', actions: assign({ stopError: ({ context }) => `QEMU did not stop within ${context.bounds.stopMs} ms` }) },
      },
    },
    failed: { type: 'final' },
  },
  output: ({ context }): ColdBootOutput =>
    context.failure === undefined && context.pid !== undefined
      ? { outcome: 'ready', pid: context.pid, health: context.health, rotated: context.rotated }
      : {
          outcome: 'failed',
          failure: context.failure ?? { state: 'coldBoot', code: 'E_UNEXPECTED', message: 'cold boot ended without a result', hint: undefined },
          stopError: context.stopError,
        },
});
