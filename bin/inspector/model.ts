import type { AnyStateMachine } from 'xstate';
import { captureMachine } from '../../machines/capture.js';
import { coldBootMachine } from '../../machines/cold-boot.js';
import { resumeMachine } from '../../machines/resume.js';
import { startMachine, type StartBounds } from '../../machines/start.js';
import { stopMachine, type StopBounds } from '../../machines/stop.js';
import type { InspectorModel, ModelMachine } from '../../adapters/inspector/protocol.js';

interface NodeLike {
  id: string;
  key: string;
  type: string;
  states: Record<string, NodeLike>;
  invoke: { src: unknown }[];
  after: { delay?: unknown }[];
  always?: unknown[];
  meta?: { warning?: unknown };
}

/** The page's picture of the machines: each state, its bound in ms, and the machine it invokes. */
export function inspectorModel(run: { kind: 'start'; bounds: StartBounds } | { kind: 'stop'; bounds: StopBounds }): InspectorModel {
  if (run.kind === 'stop') return { root: 'stop', machines: [describe(stopMachine, run.bounds)] };
  return { root: 'start', machines: [startMachine, coldBootMachine, captureMachine, resumeMachine].map((machine) => describe(machine, run.bounds)) };
}

function describe(machine: AnyStateMachine, bounds: object): ModelMachine {
  const delays = (machine.implementations.delays ?? {}) as Record<string, unknown>;
  const machineIds = new Set(['coldBoot', 'capture', 'resume']);
  const states = Object.values((machine.root as unknown as NodeLike).states).map((node) => {
    const delay = node.after[0]?.delay;
    const resolve = typeof delay === 'string' ? delays[delay] : delay;
    const bound =
      typeof resolve === 'function' ? (resolve as (args: { context: { bounds: object } }) => number)({ context: { bounds } }) : typeof resolve === 'number' ? resolve : undefined;
    const invoked = node.invoke.map((invoke) => String(invoke.src)).find((src) => machineIds.has(src));
    return {
      id: node.id,
      name: node.key,
      final: node.type === 'final',
      transient: (node.always?.length ?? 0) > 0,
      ...(bound !== undefined ? { boundMs: bound } : {}),
      ...(invoked ? { invokes: invoked } : {}),
      ...(typeof node.meta?.warning === 'string' ? { warning: node.meta.warning } : {}),
    };
  });
  return { id: machine.id, states };
}
