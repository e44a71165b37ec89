import { assign, setup } from 'xstate';
import { boundDelays, boundedSteps, doneOutput } from './bounded.js';
import { failedAfterCont } from '../shapes/snapshot-policy.js';
import { placeholder } from './placeholder.js';
import { failedOutput, type Failure, type FailedOutput } from './failure.js';
import { newGuestRun, type GuestRun, type HealthResult, type RotateResult } from './cold-boot.js';

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
  /** Waking a suspended instance that had fresh secrets: it keeps them, and nothing is rotated. */
  kept?: boolean;
}

/** Actor results: small and secret-free, since they become trace events. */
export interface PreparedState {
  /** Snapshot files checksummed in full first, because they changed since they were last (usually none). */
  checked: string[];
  /** Host ports chosen for this instance. */
  forwards: number;
  overlay: boolean;
}
export interface Incoming {
  /** QEMU's runstate once the incoming migration settled; only `paused` lets `cont` run. */
  runstate: string;
}
export interface Resumed {
  runstate: string;
}

export type ResumeOutput = { outcome: 'healthy'; pid: number; health: HealthResult[]; rotated: boolean } | FailedOutput;

interface ResumeContext extends GuestRun {
  bounds: ResumeBounds;
  rotation: boolean;
  kept: boolean;
}

export type ResumeEvent = { type: 'CANCEL' };

export const KEPT_NOTE = 'woken from its suspended state: the guest keeps the secrets it had, none are rotated';
export const UNROTATED_WARNING = 'rotation is off: the guest runs with the placeholder secrets captured in the snapshot';

/** Fresh secrets go in after `cont`: rotation is on and the guest's own (a woken state's) are not kept. */
function rotatesNext(context: Pick<ResumeContext, 'rotation' | 'kept'>): boolean {
  return context.rotation && !context.kept;
}

const resume = setup({
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
    cont: placeholder<Resumed, { agentSoon: boolean }>('resume', 'cont'),
    rotateSecrets: placeholder<RotateResult>('resume', 'rotateSecrets'),
    probeHealth: placeholder<HealthResult[]>('resume', 'probeHealth'),
    stopQemu: placeholder<{ how: string }, { countFailure: boolean; reason: string | undefined }>('resume', 'stopQemu'),
  },
  actions: {
    recordFailure: assign((_, failure: Failure) => ({ failure })),
    recordStopError: assign((_, stopError: string) => ({ stopError })),
    recordPid: assign((_, pid: number) => ({ pid })),
    recordRotated: assign({ rotated: true }),
    recordHealth: assign((_, health: HealthResult[]) => ({ health })),
    // QEMU settled in another runstate than `paused`: the snapshot did not load as it should.
    recordNotPaused: assign((_, incoming: Incoming) => ({
      failure: {
        state: 'resume.incoming',
        code: 'E_NOT_PAUSED',
        message: `the incoming migration ended with runstate "${incoming.runstate}", not "paused"`,
        hint: 'the snapshot may be damaged; the cold boot will capture a fresh one',
      } satisfies Failure,
    })),
  },
  guards: {
    isPaused: (_, incoming: Incoming) => incoming.runstate === 'paused',
    rotationWanted: ({ context }) => rotatesNext(context),
    secretsKept: ({ context }) => context.kept,
  },
  delays: boundDelays('prepareMs', 'launchMs', 'incomingMs', 'contMs', 'rotateMs', 'healthMs', 'stopMs'),
});

const { bounded, cleanup } = boundedSteps(resume, { hint: 'the cold boot runs instead; see the trace for where the time went' });

/**
 * Resume from a snapshot: preparing → launching → incoming → paused → cont → rotating →
 * probing → healthy. `cont` is reached only from `paused`, and `paused` only when QEMU said so
 * (a migration status of `none` is not done). Any failure, bound or Ctrl-C goes through
 * `stopping` (QEMU stopped, overlay dropped) to `failed`, whose output tells the root machine
 * why, so it can fall back to a cold boot.
 */
export const resumeMachine = resume.createMachine({
  id: 'resume',
  context: ({ input }) => ({ bounds: input.bounds, rotation: input.rotation, kept: input.kept ?? false, ...newGuestRun() }),
  initial: 'preparing',
  states: {
    preparing: bounded({
      src: 'prepareState',
      state: 'resume.preparing',
      done: 'launching',
      bound: 'prepareMs',
      waitingFor: 'the snapshot checked and the disk overlay made',
      failTo: 'stopping',
    }),
    launching: bounded({
      src: 'launchIncoming',
      state: 'resume.launching',
      done: { target: 'incoming', actions: { type: 'recordPid', params: ({ event }) => event.output.pid } },
      bound: 'launchMs',
      waitingFor: 'QEMU opening its QMP socket',
      failTo: 'stopping',
    }),
    incoming: bounded({
      src: 'migrateIncoming',
      state: 'resume.incoming',
      done: [
        { guard: { type: 'isPaused', params: doneOutput }, target: 'paused' },
        { target: 'stopping', actions: { type: 'recordNotPaused', params: doneOutput } },
      ],
      bound: 'incomingMs',
      waitingFor: 'the incoming migration reaching runstate "paused"',
      failTo: 'stopping',
    }),
    paused: {
      always: 'cont',
    },
    cont: bounded({
      src: 'cont',
      state: 'resume.cont',
      input: ({ context }) => ({ agentSoon: rotatesNext(context) }),
      done: [{ guard: 'rotationWanted', target: 'rotating' }, { guard: 'secretsKept', target: 'kept' }, { target: 'unrotated' }],
      bound: 'contMs',
      waitingFor: 'QEMU reporting runstate "running" after cont',
      failTo: 'stopping',
    }),
    rotating: bounded({
      src: 'rotateSecrets',
      state: 'resume.rotating',
      done: { target: 'probing', actions: 'recordRotated' },
      bound: 'rotateMs',
      waitingFor: "the guest's rotate command exiting 0",
      failTo: 'stopping',
    }),
    // Passed through only when rotation is off: the trace and the inspector carry the warning.
    unrotated: {
      meta: { warning: UNROTATED_WARNING },
      always: 'probing',
    },
    // Passed through only when a suspended instance is woken with the secrets it had.
    kept: {
      meta: { note: KEPT_NOTE },
      always: 'probing',
    },
    probing: bounded({
      src: 'probeHealth',
      state: 'resume.probing',
      done: { target: 'healthy', actions: { type: 'recordHealth', params: doneOutput } },
      bound: 'healthMs',
      waitingFor: 'every health check answering',
      failTo: 'stopping',
    }),
    healthy: { type: 'final' },
    stopping: cleanup({
      src: 'stopQemu',
      state: 'resume.stopping',
      bound: 'stopMs',
      to: 'failed',
      late: (ms) => `QEMU did not stop within ${ms} ms`,
      // The guest failed after it ran from the snapshot: counted against the snapshot (twice in a row sets it aside).
      input: ({ context }) => ({
        countFailure: context.failure !== undefined && failedAfterCont(context.failure),
        reason: context.failure && `${context.failure.state}: ${context.failure.message}`,
      }),
    }),
    failed: { type: 'final' },
  },
  output: ({ context }): ResumeOutput =>
    context.failure === undefined && context.pid !== undefined
      ? { outcome: 'healthy', pid: context.pid, health: context.health, rotated: context.rotated }
      : failedOutput('resume', 'resume', context),
});
