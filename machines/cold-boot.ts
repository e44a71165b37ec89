import { assign, fromPromise, setup } from 'xstate';
import { interruptedFailure, timeoutFailure, toFailure, type Failure } from './failure.js';

export interface ColdBootBounds {
  launchMs: number;
  bootMs: number;
  healthMs: number;
  stopMs: number;
}

export interface ColdBootInput {
  bounds: ColdBootBounds;
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

export type ColdBootOutput =
  | { outcome: 'ready'; pid: number; health: HealthResult[] }
  | { outcome: 'failed'; failure: Failure; stopError: string | undefined };

interface ColdBootContext {
  bounds: ColdBootBounds;
  pid: number | undefined;
  health: HealthResult[];
  failure: Failure | undefined;
  stopError: string | undefined;
}

export type ColdBootEvent = { type: 'CANCEL' };

/** The machine names its actors; `actors/` provides the real ones, tests provide fakes. */
function placeholder<TOutput>(name: string) {
  return fromPromise<TOutput, void>(async () => {
    throw new Error(`actor ${name} was not provided to the coldBoot machine`);
  });
}

/**
 * Cold boot: launching → booting → probing → ready. Every wait is bounded; every failure,
 * a passed bound or Ctrl-C goes through `stopping`, so no QEMU outlives a failed boot.
 */
export const coldBootMachine = setup({
  types: {
    context: {} as ColdBootContext,
    events: {} as ColdBootEvent,
    input: {} as ColdBootInput,
    output: {} as ColdBootOutput,
  },
  actors: {
    launchQemu: placeholder<LaunchResult>('launchQemu'),
    waitForGuest: placeholder<GuestUp>('waitForGuest'),
    probeHealth: placeholder<HealthResult[]>('probeHealth'),
    stopQemu: placeholder<StopResult>('stopQemu'),
  },
  delays: {
    launchBound: ({ context }) => context.bounds.launchMs,
    bootBound: ({ context }) => context.bounds.bootMs,
    healthBound: ({ context }) => context.bounds.healthMs,
    stopBound: ({ context }) => context.bounds.stopMs,
  },
}).createMachine({
  id: 'coldBoot',
  context: ({ input }) => ({ bounds: input.bounds, pid: undefined, health: [], failure: undefined, stopError: undefined }),
  initial: 'launching',
  states: {
    launching: {
      invoke: {
        src: 'launchQemu',
        onDone: { target: 'booting', actions: assign({ pid: ({ event }) => event.output.pid }) },
        onError: { target: 'stopping', actions: assign({ failure: ({ event }) => toFailure('coldBoot.launching', event.error) }) },
      },
      after: {
        launchBound: {
          target: 'stopping',
          actions: assign({
            failure: ({ context }) =>
              timeoutFailure('coldBoot.launching', context.bounds.launchMs, 'QEMU opening its QMP socket', 'see qemu.log in the instance folder'),
          }),
        },
      },
      on: { CANCEL: { target: 'stopping', actions: assign({ failure: () => interruptedFailure('coldBoot.launching') }) } },
    },
    booting: {
      invoke: {
        src: 'waitForGuest',
        onDone: { target: 'probing' },
        onError: { target: 'stopping', actions: assign({ failure: ({ event }) => toFailure('coldBoot.booting', event.error) }) },
      },
      after: {
        bootBound: {
          target: 'stopping',
          actions: assign({
            failure: ({ context }) =>
              timeoutFailure('coldBoot.booting', context.bounds.bootMs, 'the guest agent answering', 'see serial.log in the instance folder for how far the guest got; raise bounds.bootSeconds for a slow guest'),
          }),
        },
      },
      on: { CANCEL: { target: 'stopping', actions: assign({ failure: () => interruptedFailure('coldBoot.booting') }) } },
    },
    probing: {
      invoke: {
        src: 'probeHealth',
        onDone: { target: 'ready', actions: assign({ health: ({ event }) => event.output }) },
        onError: { target: 'stopping', actions: assign({ failure: ({ event }) => toFailure('coldBoot.probing', event.error) }) },
      },
      after: {
        healthBound: {
          target: 'stopping',
          actions: assign({
            failure: ({ context }) =>
              timeoutFailure('coldBoot.probing', context.bounds.healthMs, 'every health check answering', 'see serial.log in the instance folder; check the health checks in the config'),
          }),
        },
      },
      on: { CANCEL: { target: 'stopping', actions: assign({ failure: () => interruptedFailure('coldBoot.probing') }) } },
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
      ? { outcome: 'ready', pid: context.pid, health: context.health }
      : {
          outcome: 'failed',
          failure: context.failure ?? { state: 'coldBoot', code: 'E_UNEXPECTED', message: 'cold boot ended without a result', hint: undefined },
          stopError: context.stopError,
        },
});
