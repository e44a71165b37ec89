import { assign, setup } from 'xstate';
import { placeholder } from './placeholder.js';
import { timeoutFailure, toFailure, type Failure } from './failure.js';

export interface StopBounds {
  checkMs: number;
  /** How long SIGTERM gets before SIGKILL. */
  termMs: number;
  killMs: number;
  cleanMs: number;
}

export interface StopInput {
  bounds: StopBounds;
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

export type StopOutput =
  | { outcome: 'stopped'; pid: number; how: 'terminated' | 'killed'; removed: string[] }
  | { outcome: 'stale-cleaned'; pid: number | undefined; removed: string[] }
  | { outcome: 'failed'; failure: Failure };

interface StopContext {
  bounds: StopBounds;
  pid: number | undefined;
  running: boolean;
  how: 'terminated' | 'killed';
  removed: string[];
  failure: Failure | undefined;
}

/**
 * `warmvm stop`: checking → terminating (SIGTERM) → killing (SIGKILL, when the grace bound
 * passes) → cleaning (sockets, pidfile, state) → stopped. A pidfile whose QEMU is gone is a
 * crash's leftover: checking → cleaning → staleCleaned. Nothing at all: notRunning.
 */
export const stopMachine = setup({
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
  },
  actions: {
    recordError: assign(({ event }, params: { state: string }) => ({ failure: toFailure(params.state, (event as unknown as { error: unknown }).error) })),
  },
  guards: {
    running: ({ event }) => (event as unknown as { output: InstanceFound }).output.running,
    leftovers: ({ event }) => (event as unknown as { output: InstanceFound }).output.leftovers.length > 0,
    wasRunning: ({ context }) => context.running,
  },
  delays: {
    checkBound: ({ context }) => context.bounds.checkMs,
    termBound: ({ context }) => context.bounds.termMs,
    killBound: ({ context }) => context.bounds.killMs,
    cleanBound: ({ context }) => context.bounds.cleanMs,
  },
}).createMachine({
  id: 'stop',
  context: ({ input }) => ({ bounds: input.bounds, pid: undefined, running: false, how: 'terminated', removed: [], failure: undefined }),
  initial: 'checking',
  states: {
    checking: {
      invoke: {
        src: 'findInstance',
        onDone: [
          { guard: 'running', target: 'terminating', actions: assign({ pid: ({ event }) => event.output.pid, running: true }) },
          { guard: 'leftovers', target: 'cleaning', actions: assign({ pid: ({ event }) => event.output.pid }) },
          {
            target: 'failed',
            actions: assign({
              failure: () => ({ state: 'stop.checking', code: 'E_NOT_RUNNING', message: 'the instance is not running', hint: undefined }),
            }),
          },
        ],
        onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'stop.checking' } } },
      },
      after: { checkBound: { target: 'failed', actions: assign({ failure: ({ context }) => timeoutFailure('stop.checking', context.bounds.checkMs, 'reading the instance folder', 'check the warmvm home') }) } },
    },
    terminating: {
      invoke: {
        src: 'terminate',
        input: ({ context }) => ({ pid: context.pid as number }),
        onDone: 'cleaning',
        onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'stop.terminating' } } },
      },
      // QEMU ignoring SIGTERM is not a failure: the next step is SIGKILL.
      after: { termBound: { target: 'killing', actions: assign({ how: 'killed' }) } },
    },
    killing: {
      invoke: {
        src: 'kill',
        input: ({ context }) => ({ pid: context.pid as number }),
        onDone: 'cleaning',
        onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'stop.killing' } } },
      },
      after: {
        killBound: {
          target: 'failed',
          actions: assign({
            failure: ({ context }) => ({
              state: 'stop.killing',
              code: 'E_QEMU_STOP',
              message: `QEMU (pid ${context.pid}) survived SIGKILL for ${context.bounds.killMs} ms`,
              hint: `check the process with: ps -o pid,stat,cmd -p ${context.pid}`,
            }),
          }),
        },
      },
    },
    cleaning: {
      invoke: {
        src: 'clean',
        onDone: [
          { guard: 'wasRunning', target: 'stopped', actions: assign({ removed: ({ event }) => event.output.removed }) },
          { target: 'staleCleaned', actions: assign({ removed: ({ event }) => event.output.removed }) },
        ],
        onError: { target: 'failed', actions: { type: 'recordError', params: { state: 'stop.cleaning' } } },
      },
      after: { cleanBound: { target: 'failed', actions: assign({ failure: ({ context }) => timeoutFailure('stop.cleaning', context.bounds.cleanMs, 'removing the runtime files', 'check the instance folder') }) } },
    },
    stopped: { type: 'final' },
    staleCleaned: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }): StopOutput => {
    if (context.failure !== undefined) return { outcome: 'failed', failure: context.failure };
    if (context.running && context.pid !== undefined) return { outcome: 'stopped', pid: context.pid, how: context.how, removed: context.removed };
    return { outcome: 'stale-cleaned', pid: context.pid, removed: context.removed };
  },
});
