import type { AnyStateMachine } from 'xstate';
import type { EdgeKind, ModelEdge, ModelMachine, ModelState } from '../../adapters/inspector/protocol.js';

/** The parts of an XState v5 state node read here (its internals are not in xstate's public types). */
interface NodeLike {
  id: string;
  key: string;
  type: string;
  states: Record<string, NodeLike>;
  invoke: { src: unknown }[];
  /** Every event's transitions: `on`, the invoke's onDone/onError, and the `after` delays. */
  transitions: Map<string, TransitionLike[]>;
  always?: TransitionLike[];
  initial?: { target: NodeLike[] };
  meta?: { warning?: unknown };
}

interface TransitionLike {
  eventType: string;
  target?: NodeLike[];
  guard?: unknown;
  actions: unknown[];
  /** Set on an `after` transition: the delay's name (`launchBound`) or its ms. */
  delay?: unknown;
}

/** The machines a state may invoke, drawn as machines of their own. */
const MACHINE_IDS = new Set(['coldBoot', 'capture', 'resume']);

/**
 * One machine as the inspector draws it, read off the machine itself so a changed machine redraws
 * itself: its top-level states (bound resolved against `bounds`, the machine each invokes) and an
 * edge per transition with a target, labelled by its event and kind.
 */
export function machineGraph(machine: AnyStateMachine, bounds: object): ModelMachine {
  const root = machine.root as unknown as NodeLike;
  const delays = (machine.implementations.delays ?? {}) as Record<string, unknown>;
  const boundOf = (delay: unknown): number | undefined => {
    const resolve = typeof delay === 'string' ? delays[delay] : delay;
    if (typeof resolve === 'function') return (resolve as (args: { context: { bounds: object } }) => number)({ context: { bounds } });
    return typeof resolve === 'number' ? resolve : undefined;
  };
  const initial = root.initial?.target[0]?.id;
  const states: ModelState[] = [];
  const edges: ModelEdge[] = [];
  for (const node of Object.values(root.states)) {
    const delayed = [...node.transitions.values()].flat().find((transition) => transition.delay !== undefined);
    const bound = delayed ? boundOf(delayed.delay) : undefined;
    const invoked = node.invoke.map((invoke) => String(invoke.src)).find((src) => MACHINE_IDS.has(src));
    states.push({
      id: node.id,
      name: node.key,
      final: node.type === 'final',
      transient: (node.always?.length ?? 0) > 0,
      ...(node.id === initial ? { initial: true } : {}),
      ...(bound !== undefined ? { boundMs: bound } : {}),
      ...(invoked ? { invokes: invoked } : {}),
      ...(typeof node.meta?.warning === 'string' ? { warning: node.meta.warning } : {}),
    });
    const transitions = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
    for (const transition of transitions) {
      const target = transition.target?.[0];
      // A transition without a target (Ctrl-C forwarded to a child) stays in its state: no arrow.
      if (!target) continue;
      const kind = edgeKind(transition);
      const delayMs = transition.delay !== undefined ? boundOf(transition.delay) : undefined;
      edges.push({
        id: `${node.id}->${target.id}#${edges.length}`,
        from: node.id,
        to: target.id,
        kind,
        label: edgeLabel(kind, guardName(transition.guard), delayMs),
      });
    }
  }
  return { id: machine.id, states, edges };
}

/** A fallback edge is one whose action falls back (`fallBack`, `fallBackToCapture`): the fast path failed. */
function edgeKind(transition: TransitionLike): EdgeKind {
  const event = transition.eventType;
  if (transition.actions.some((action) => /^fallBack/.test(actionName(action)))) return 'fallback';
  if (event === '') return 'always';
  if (event.startsWith('xstate.done.')) return 'done';
  if (event.startsWith('xstate.error.')) return 'error';
  if (event.startsWith('xstate.after.')) return 'bound';
  if (event === 'CANCEL') return 'cancel';
  return 'event';
}

function edgeLabel(kind: EdgeKind, guard: string | undefined, delayMs: number | undefined): string {
  const when = guard ? ` [${guard}]` : '';
  if (kind === 'bound') return delayMs !== undefined ? `after ${delayMs / 1000} s` : 'bound passed';
  if (kind === 'cancel') return 'Ctrl-C';
  if (kind === 'error') return 'error';
  if (kind === 'always') return `always${when}`;
  if (kind === 'fallback') return `fallback${when}`;
  return `done${when}`;
}

function guardName(guard: unknown): string | undefined {
  if (typeof guard === 'string') return guard;
  if (guard && typeof guard === 'object' && typeof (guard as { type?: unknown }).type === 'string') return (guard as { type: string }).type;
  if (typeof guard === 'function') return guard.name || 'guard';
  return undefined;
}

function actionName(action: unknown): string {
  if (typeof action === 'string') return action;
  if (action && typeof action === 'object' && typeof (action as { type?: unknown }).type === 'string') return (action as { type: string }).type;
  return '';
}
