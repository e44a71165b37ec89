import { assign, setup } from 'xstate';
import { placeholder } from './placeholder.js';
import { interruptedFailure, timeoutFailure, toFailure, type Failure } from './failure.js';
import type { HealthResult } from './cold-boot.js';

export interface ResumeBounds {
  prepareMs: number;
  launchMs: number;
  incomingMs: number;
  contMs: number;
  rotateMs: number;
  healthMs: number;
  stopMs: number;
}

export interface ResumeInput {
  bounds: ResumeBounds;
  /** The user turned rotation off: the guest keeps the snapshot's placeholder secrets. */
  rotation: boolean;
}

/** Actor results: small and secret-free, since they become trace events. */
export interface PreparedState {
  stateFile: string;
  decompressed: boolean;
}
export interface Incoming {
  /** QEMU's runstate once the incoming migration settled; only `paused` lets `cont` run. */
  runstate: string;
}
export interface Resumed {
  runstate: string;
}
export interface Rotated {
  /** How many secrets went in; never their values. */
  secrets: number;
  exitCode: number;
}

export type ResumeOutput =
  | { outcome: 'healthy'; pid: number; health: HealthResult[]; rotated: boolean }
  | { outcome: 'failed'; failure: Failure; stopError: string | undefined };

interface ResumeContext {
  bounds: ResumeBounds;
  rotation: boolean;
  pid: number | undefined;
  health: HealthResult[];
  rotated: boolean;
  failure: Failure | undefined;
  stopError: string | undefined;
}

export type ResumeEvent = { type: 'CANCEL' };

export const UNROTATED_WARNING = "rotation is off: the guest runs with the placeholder secrets captured in the snapshot";

/**
 * Resume from a snapshot: preparing → launching → incoming → paused → cont → rotating →
 * probing → healthy. `cont` is reached only from `paused`, and `paused` only when QEMU said so
 * (a migration status of `none` is not done). Any failure, bound or Ctrl-C goes through
 * `stopping` (QEMU stopped, overlay dropped) to `failed`, whose output tells the root machine
 * why, so it can fall back to a cold boot.
 */
export const resumeMachine = setup({
  types: {
    context: {} as ResumeContext,
    events: {} as ResumeEvent,
    input: {} as ResumeInput,
    output: {} as ResumeOutput,
  },
  actors: {
    prepareState: placeholder<PreparedState>('resume', 'prepareState'),
    launchIncoming: placeholder<{ pid: number }>('resume', 'launchIncoming'),
    migrateIncoming: placeholder<Incoming>('resume', 'migrateIncoming'),
    cont: placeholder<Resumed>('resume', 'cont'),
    rotateSecrets: placeholder<Rotated>('resume', 'rotateSecrets'),
    probeHealth: placeholder<HealthResult[]>('resume', 'probeHealth'),
    stopQemu: placeholder<{ how: string }>('resume', 'stopQemu'),
  },
  actions: {
    recordError: assign(({ event }, params: { state: string }) => ({ failure: toFailure(params.state, (event as unknown as { error: unknown }).error) })),
    recordBound: assign(({ context }, params: { state: string; bound: keyof ResumeBounds; waitingFor: string }) => ({
      failure: timeoutFailure(params.state, context.bounds[params.bound], params.waitingFor, 'the cold boot runs instead; see the trace for where the time went'),
    })),
    recordCancel: assign((_, params: { state: string }) => ({ failure: interruptedFailure(params.state) })),
  },
  guards: {
    isPaused: ({ event }) => (event as unknown as { output: Incoming }).output.runstate === 'paused',
    rotationWanted: ({ context }) => context.rotation,
  },
  delays: {
    prepareBound: ({ context }) => context.bounds.prepareMs,
    launchBound: ({ context }) => context.bounds.launchMs,
    incomingBound: ({ context }) => context.bounds.incomingMs,
    contBound: ({ context }) => context.bounds.contMs,
    rotateBound: ({ context }) => context.bounds.rotateMs,
    healthBound: ({ context }) => context.bounds.healthMs,
    stopBound: ({ context }) => context.bounds.stopMs,
  },
}).createMachine({
  id: 'resume',
  context: ({ input }) => ({
    bounds: input.bounds,
    rotation: input.rotation,
    pid: undefined,
    health: [],
    rotated: false,
    failure: undefined,
    stopError: undefined,
  }),
  initial: 'preparing',
  states: {
    preparing: {
      invoke: { src: 'prepareState', onDone: 'launching', onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'resume.preparing' } } } },
      after: { prepareBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'resume.preparing', bound: 'prepareMs', waitingFor: 'the state file and disk overlay being ready' } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'resume.preparing' } } } },
    },
    launching: {
      invoke: {
        src: 'launchIncoming',
        onDone: { target: 'incoming', actions: assign({ pid: ({ event }) => event.output.pid }) },
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'resume.launching' } } },
      },
      after: { launchBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'resume.launching', bound: 'launchMs', waitingFor: 'QEMU opening its QMP socket' } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'resume.launching' } } } },
    },
    incoming: {
      invoke: {
        src: 'migrateIncoming',
        onDone: [
          { guard: 'isPaused', target: 'paused' },
          {
            target: 'stopping',
            actions: assign({
              failure: ({ event }) => ({
                state: 'resume.incoming',
                code: 'E_NOT_PAUSED',
                message: `the incoming migration ended with runstate "${event.output.runstate}", not "paused"`,
                hint: 'the snapshot may be damaged; the cold boot will capture a fresh one',
              }),
            }),
          },
        ],
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'resume.incoming' } } },
      },
      after: { incomingBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'resume.incoming', bound: 'incomingMs', waitingFor: 'the incoming migration reaching runstate "paused"' } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'resume.incoming' } } } },
    },
    paused: {
      always: 'cont',
    },
    cont: {
      invoke: {
        src: 'cont',
        onDone: [{ guard: 'rotationWanted', target: 'rotating' }, { target: 'unrotated' }],
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'resume.cont' } } },
      },
      after: { contBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'resume.cont', bound: 'contMs', waitingFor: 'QEMU reporting runstate "running" after cont' } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'resume.cont' } } } },
    },
    rotating: {
      invoke: {
        src: 'rotateSecrets',
        onDone: { target: 'probing', actions: assign({ rotated: true }) },
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'resume.rotating' } } },
      },
      after: { rotateBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'resume.rotating', bound: 'rotateMs', waitingFor: "the guest's rotate command exiting 0" } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'resume.rotating' } } } },
    },
    // Passed through only when rotation is off: the trace and the inspector carry the warning.
    unrotated: {
      meta: { warning: UNROTATED_WARNING },
      always: 'probing',
    },
    probing: {
      invoke: {
        src: 'probeHealth',
        onDone: { target: 'healthy', actions: assign({ health: ({ event }) => event.output }) },
        onError: { target: 'stopping', actions: { type: 'recordError', params: { state: 'resume.probing' } } },
      },
      after: { healthBound: { target: 'stopping', actions: { type: 'recordBound', params: { state: 'resume.probing', bound: 'healthMs', waitingFor: 'every health check answering' } } } },
      on: { CANCEL: { target: 'stopping', actions: { type: 'recordCancel', params: { state: 'resume.probing' } } } },
    },
    healthy: { type: 'final' },
    stopping: {
      invoke: {
        src: 'stopQemu',
        onDone: 'failed',
        onError: { target: 'failed', actions: assign({ stopError: ({ event }) => toFailure('resume.stopping', event.error).message }) },
      },
      after: { stopBound: { target: 'failed', actions: assign({ stopError: ({ context }) => `QEMU did not stop within ${context.bounds.stopMs} ms` }) } },
    },
    failed: { type: 'final' },
  },
  output: ({ context }): ResumeOutput =>
    context.failure === undefined && context.pid !== undefined
      ? { outcome: 'healthy', pid: context.pid, health: context.health, rotated: context.rotated }
      : {
          outcome: 'failed',
          failure: context.failure ?? { state: 'resume', code: 'E_UNEXPECTED', message: 'resume ended without a result', hint: undefined },
          stopError: context.stopError,
        },
});
