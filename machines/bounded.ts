import type { ErrorActorEvent } from 'xstate';
import { interruptedFailure, timeoutFailure, toFailure, type Failure } from './failure.js';

/*
 * A bounded step is the shape nearly every waiting state shares: invoke one actor; its answer goes
 * on, and its error, its bound passing or Ctrl-C record a failure and go to the state that cleans up.
 * Written once here, so that a state reads as its target and what it waits for.
 *
 * The failure is built here, from the event or the context, as dynamic `params` of the one action
 * each machine keeps for it, typed by its own context (a shared `assign` would not type-check
 * against every machine's context):
 *   recordFailure: assign((_, failure: Failure) => ({ failure }))
 *   recordStopError: assign((_, stopError: string) => ({ stopError }))
 * A step's `done` names its actions too (`{ type: 'recordPid', params: ({ event }) => … }`, or
 * `params: doneOutput`): there the event is typed by the actor's output, which an inline `assign`
 * inside a helper's argument cannot see.
 */

/** What a machine's setup accepts as a state, read off its createStateConfig. */
type StateConfigOf<TSetup> = TSetup extends { createStateConfig: (config: infer TConfig) => unknown } ? TConfig : never;
type InvokeOf<TSetup> = StateConfigOf<TSetup> extends { invoke?: infer TInvoke } ? Exclude<NonNullable<TInvoke>, readonly unknown[]> : never;
/** The invoke config of the actor named `TSrc`: its `onDone` and `input` are typed by that actor. */
type InvokeFor<TSetup, TSrc extends string> = Extract<InvokeOf<TSetup>, { src: TSrc }>;
type DoneFor<TSetup, TSrc extends string> = InvokeFor<TSetup, TSrc> extends { onDone?: infer TDone } ? NonNullable<TDone> : never;
type InputFor<TSetup, TSrc extends string> = InvokeFor<TSetup, TSrc> extends { input?: infer TInput } ? TInput : never;
type ActorName<TSetup> = InvokeOf<TSetup> extends infer TInvoke ? (TInvoke extends { src: infer TSrc extends string } ? TSrc : never) : never;
/**
 * The bounds a step may name: `launchMs` when setup has a delay `launchBound` (which lasts
 * `bounds.launchMs`). The `after` key is the delay's name, so the inspector resolves it as before.
 */
type BoundName<TSetup> =
  StateConfigOf<TSetup> extends { after?: infer TAfter }
    ? keyof NonNullable<TAfter> extends infer TDelay
      ? TDelay extends `${infer TStem}Bound`
        ? `${TStem}Ms`
        : never
      : never
    : never;

type Fail<TTarget extends string, TArgs> = { target: TTarget; actions: { type: 'recordFailure'; params: (args: TArgs) => Failure } };
type StopFail<TTarget extends string, TArgs> = { target: TTarget; actions: { type: 'recordStopError'; params: (args: TArgs) => string } };
type BoundsArgs<TBound extends string> = { context: { bounds: Record<TBound, number> } };

export interface BoundedSpec<TSetup, TSrc extends string, TBound extends string, TFail extends string> {
  src: TSrc;
  /** The state's full name, as failures and traces say it: `coldBoot.launching`. */
  state: string;
  /** Where the actor's answer goes (typed by its output), as an `onDone`. */
  done: DoneFor<TSetup, TSrc>;
  input?: InputFor<TSetup, TSrc>;
  /** The bound after which the state fails: `launchMs`, waited for by setup's delay `launchBound`. */
  bound: TBound;
  /** What did not happen in time, for the failure's message: "QEMU opening its QMP socket". */
  waitingFor: string;
  /** What a person can do when the bound passes; the machine's default when left out. */
  hint?: string;
  /** Where an error, the bound or Ctrl-C goes: the state that stops what was started. */
  failTo: TFail;
}

export interface CleanupSpec<TSrc extends string, TBound extends string, TDone extends string> {
  src: TSrc;
  state: string;
  bound: TBound;
  /** Where it goes when done, when it fails and when its bound passes: a cleanup never fails the run twice. */
  to: TDone;
  /** The stop error when the bound passes, given the bound in ms. */
  late: (ms: number) => string;
}

/**
 * The step builders for one machine; `machineSetup` (the machine's `setup(...)`) only types them.
 * `hint` is the machine's default for a passed bound.
 */
export function boundedSteps<TSetup>(machineSetup: TSetup, defaults: { hint?: string } = {}) {
  void machineSetup;

  // One failure transition for each way a step fails: its actor's error, its bound, Ctrl-C.
  const failOnError = <TTarget extends string>(target: TTarget, state: string): Fail<TTarget, { event: ErrorActorEvent }> => ({
    target,
    actions: { type: 'recordFailure', params: ({ event }) => toFailure(state, event.error) },
  });
  /** The transition taken when `bound` passes; failOnBound keys it by its delay's name. */
  const boundTransition = <TTarget extends string, TBound extends BoundName<TSetup>>(
    target: TTarget,
    state: string,
    bound: TBound,
    waitingFor: string,
    hint: string | undefined,
  ): Fail<TTarget, BoundsArgs<TBound>> => ({
    target,
    actions: { type: 'recordFailure', params: ({ context }) => timeoutFailure(state, context.bounds[bound], waitingFor, hint ?? defaults.hint ?? 'see the trace') },
  });
  const failOnBound = <TTarget extends string, TBound extends BoundName<TSetup>>(target: TTarget, state: string, bound: TBound, waitingFor: string, hint: string | undefined) => ({
    [delayOf(bound)]: boundTransition(target, state, bound, waitingFor, hint),
  });
  const failOnCancel = <TTarget extends string>(target: TTarget, state: string): Fail<TTarget, unknown> => ({
    target,
    actions: { type: 'recordFailure', params: () => interruptedFailure(state) },
  });

  return {
    failOnError,
    boundTransition,
    failOnBound,
    failOnCancel,

    /** invoke `src` → `done`; its error, `bound` or Ctrl-C → `failTo`, with the failure recorded. */
    bounded<TSrc extends ActorName<TSetup>, TBound extends BoundName<TSetup>, TFail extends string>(spec: BoundedSpec<TSetup, TSrc, TBound, TFail>) {
      return {
        invoke: { src: spec.src, input: spec.input, onDone: spec.done, onError: failOnError(spec.failTo, spec.state) },
        after: failOnBound(spec.failTo, spec.state, spec.bound, spec.waitingFor, spec.hint),
        on: { CANCEL: failOnCancel(spec.failTo, spec.state) },
      };
    },

    /**
     * The step that stops what a failed run started: done, failed or late, it goes `to` the end,
     * noting why it could not stop (the root machine then launches nothing else). Ctrl-C waits for it.
     */
    cleanup<TSrc extends ActorName<TSetup>, TBound extends BoundName<TSetup>, TDone extends string>(spec: CleanupSpec<TSrc, TBound, TDone> & { input?: InputFor<TSetup, TSrc> }) {
      const late: StopFail<TDone, BoundsArgs<TBound>> = { target: spec.to, actions: { type: 'recordStopError', params: ({ context }) => spec.late(context.bounds[spec.bound]) } };
      const failed: StopFail<TDone, { event: ErrorActorEvent }> = {
        target: spec.to,
        actions: { type: 'recordStopError', params: ({ event }) => toFailure(spec.state, event.error).message },
      };
      return {
        invoke: { src: spec.src, input: spec.input, onDone: spec.to, onError: failed },
        after: { [delayOf(spec.bound)]: late },
      };
    },
  };
}

/** `params` of a guard or action that reads what the invoked actor answered: `params: doneOutput`. */
export const doneOutput = <TOutput>({ event }: { event: { output: TOutput } }): TOutput => event.output;

type DelayOf<TBound extends string> = TBound extends `${infer TStem}Ms` ? `${TStem}Bound` : never;
type BoundDelays<TBound extends `${string}Ms`> = { [K in TBound as DelayOf<K>]: (args: BoundsArgs<K>) => number };

/**
 * A machine's delays, one per bound it waits on, named as its steps' `after` keys: `launchMs` gives
 * `launchBound`, lasting `bounds.launchMs`. The inspector resolves a state's bound through these names.
 */
export function boundDelays<const TBound extends `${string}Ms`>(...bounds: TBound[]): BoundDelays<TBound> {
  // Keys made at run time are only strings to the compiler: the mapped type says which they are.
  return Object.fromEntries(bounds.map((bound) => [delayOf(bound), ({ context }: BoundsArgs<typeof bound>) => context.bounds[bound]])) as BoundDelays<TBound>;
}

/** The delay that waits for a bound: `launchMs` → `launchBound`. */
export function delayOf(bound: string): string {
  return `${bound.replace(/Ms$/, '')}Bound`;
}
