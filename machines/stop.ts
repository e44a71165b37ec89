import { assign, setup } from 'xstate';
import { boundDelays, boundedSteps, doneOutput } from './bounded.js';
import { placeholder } from './placeholder.js';
import type { Failure } from './failure.js';

export interface StopBounds {
  checkMs: number;
  /** How long SIGTERM gets before SIGKILL. */
  termMs: number;
  killMs: number;
  cleanMs: number;
  /** How long a suspend may take to write the RAM and devices out; past it the VM runs on. */
  suspendMs: number;
}

export interface StopInput {
  bounds: StopBounds;
  /** `--suspend`: keep the instance's RAM, devices, disk and secrets for the next start, instead of dropping them. */
  suspend?: boolean;
}

/** What `checking` found: the instance's QEMU when it runs, and the runtime files lying about. */
export interface InstanceFound {
  pid: number | undefined;
  running: boolean;
  leftovers: string[];
}
export interface Gone {
  gone: true;
}
export interface Cleaned {
  removed: string[];
}
/** What a suspend kept: where, and the size of its stream. */
export interface Suspended {
  dir: string;
  stateBytes: number;
  ms: number;
}

export type StopOutput =
  | { outcome: 'stopped'; pid: number; how: 'terminated' | 'killed'; removed: string[] }
  | { outcome: 'stale-cleaned'; pid: number | undefined; removed: string[] }
  | { outcome: 'suspended'; pid: number; suspended: Suspended; removed: string[] }
  | { outcome: 'failed'; failure: Failure };

interface StopContext {
  bounds: StopBounds;
  pid: number | undefined;
  running: boolean;
  how: 'terminated' | 'killed';
  removed: string[];
  suspend: boolean;
  suspended: Suspended | undefined;
  failure: Failure | undefined;
}

const stop = setup({
  types: {
    context: {} as StopContext,
    input: {} as StopInput,
    output: {} as StopOutput,
  },
  actors: {
    findInstance: placeholder<InstanceFound>('stop', 'findInstance'),
    terminate: placeholder<Gone, { pid: number }>('stop', 'terminate'),
    kill: placeholder<Gone, { pid: number }>('stop', 'kill'),
    clean: placeholder<Cleaned>('stop', 'clean'),
    suspend: placeholder<Suspended, { pid: number }>('stop', 'suspend'),
  },
  actions: {
    recordFailure: assign((_, failure: Failure) => ({ failure })),
    recordFound: assign((_, found: InstanceFound) => ({ pid: found.pid, running: found.running })),
    recordKilled: assign({ how: 'killed' }),
    recordSuspended: assign((_, suspended: Suspended) => ({ suspended })),
    recordRemoved: assign((_, cleaned: Cleaned) => ({ removed: cleaned.removed })),
    recordNotRunning: assign({ failure: (): Failure => ({ state: 'stop.checking', code: 'E_NOT_RUNNING', message: 'the instance is not running', hint: undefined }) }),
    recordSurvivedKill: assign({
      failure: ({ context }): Failure => ({
        state: 'stop.killing',
        code: 'E_QEMU_STOP',
        message: `QEMU (pid ${context.pid}) survived SIGKILL for ${context.bounds.killMs} ms`,
        hint: `check the process with: ps -o pid,stat,cmd -p ${context.pid}`,
      }),
    }),
  },
  guards: {
    running: (_, found: InstanceFound) => found.running,
    suspendRunning: ({ context }, found: InstanceFound) => context.suspend && found.running,
    leftovers: (_, found: InstanceFound) => found.leftovers.length > 0,
    wasRunning: ({ context }) => context.running,
    wasSuspended: ({ context }) => context.suspended !== undefined,
  },
  delays: boundDelays('checkMs', 'termMs', 'killMs', 'cleanMs', 'suspendMs'),
});

// `warmvm stop` takes no Ctrl-C of its own, so its states use the failure transitions without CANCEL.
const { failOnError, failOnBound } = boundedSteps(stop);

/**
 * `warmvm stop`: checking → terminating (SIGTERM) → killing (SIGKILL, when the grace bound
 * passes) → cleaning (sockets, pidfile, state) → stopped. A pidfile whose QEMU is gone is a
 * crash's leftover: checking → cleaning → staleCleaned. Nothing at all: failed, `E_NOT_RUNNING`.
 */
export const stopMachine = stop.createMachine({
  id: 'stop',
  context: ({ input }) => ({
    bounds: input.bounds,
    pid: undefined,
    running: false,
    how: 'terminated',
    removed: [],
    suspend: input.suspend ?? false,
    suspended: undefined,
    failure: undefined,
  }),
  initial: 'checking',
  states: {
    checking: {
      invoke: {
        src: 'findInstance',
        onDone: [
          { guard: { type: 'suspendRunning', params: doneOutput }, target: 'suspending', actions: { type: 'recordFound', params: doneOutput } },
          { guard: { type: 'running', params: doneOutput }, target: 'terminating', actions: { type: 'recordFound', params: doneOutput } },
          { guard: { type: 'leftovers', params: doneOutput }, target: 'cleaning', actions: { type: 'recordFound', params: doneOutput } },
          { target: 'failed', actions: 'recordNotRunning' },
        ],
        onError: failOnError('failed', 'stop.checking'),
      },
      after: failOnBound('failed', 'stop.checking', 'checkMs', 'reading the instance folder', 'check the warmvm home'),
    },
    // Paused, written out (RAM and devices), quit, its overlay and secrets moved beside: the VM is gone but nothing of it is lost. A failure lets it run on.
    suspending: {
      invoke: {
        src: 'suspend',
        input: ({ context }) => ({ pid: context.pid as number }),
        onDone: { target: 'cleaning', actions: { type: 'recordSuspended', params: doneOutput } },
        onError: failOnError('failed', 'stop.suspending'),
      },
      after: failOnBound('failed', 'stop.suspending', 'suspendMs', 'the RAM and devices written out', 'free disk space in the warmvm home, or stop without --suspend'),
    },
    terminating: {
      invoke: { src: 'terminate', input: ({ context }) => ({ pid: context.pid as number }), onDone: 'cleaning', onError: failOnError('failed', 'stop.terminating') },
      // QEMU ignoring SIGTERM is not a failure: the next step is SIGKILL.
      after: { termBound: { target: 'killing', actions: 'recordKilled' } },
    },
    killing: {
      invoke: { src: 'kill', input: ({ context }) => ({ pid: context.pid as number }), onDone: 'cleaning', onError: failOnError('failed', 'stop.killing') },
      after: { killBound: { target: 'failed', actions: 'recordSurvivedKill' } },
    },
    cleaning: {
      invoke: {
        src: 'clean',
        onDone: [
          { guard: 'wasSuspended', target: 'suspended', actions: { type: 'recordRemoved', params: doneOutput } },
          { guard: 'wasRunning', target: 'stopped', actions: { type: 'recordRemoved', params: doneOutput } },
          { target: 'staleCleaned', actions: { type: 'recordRemoved', params: doneOutput } },
        ],
        onError: failOnError('failed', 'stop.cleaning'),
      },
      after: failOnBound('failed', 'stop.cleaning', 'cleanMs', 'removing the runtime files', 'check the instance folder'),
    },
    stopped: { type: 'final' },
    suspended: { type: 'final' },
    staleCleaned: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }): StopOutput => {
    if (context.failure !== undefined) return { outcome: 'failed', failure: context.failure };
    if (context.suspended && context.pid !== undefined) return { outcome: 'suspended', pid: context.pid, suspended: context.suspended, removed: context.removed };
    if (context.running && context.pid !== undefined) return { outcome: 'stopped', pid: context.pid, how: context.how, removed: context.removed };
    return { outcome: 'stale-cleaned', pid: context.pid, removed: context.removed };
  },
});
