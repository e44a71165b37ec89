import { captureMachine } from '../../machines/capture.js';
import { coldBootMachine } from '../../machines/cold-boot.js';
import { resumeMachine } from '../../machines/resume.js';
import { startMachine, type StartBounds } from '../../machines/start.js';
import { stopMachine, type StopBounds } from '../../machines/stop.js';
import type { InspectorModel } from '../../adapters/inspector/protocol.js';
import { machineGraph } from './graph.js';

/** The page's picture of the machines: each state, its bound in ms, the machine it invokes, its edges. */
export function inspectorModel(run: { kind: 'start'; bounds: StartBounds } | { kind: 'stop'; bounds: StopBounds }): InspectorModel {
  if (run.kind === 'stop') return { root: 'stop', machines: [machineGraph(stopMachine, run.bounds)] };
  return { root: 'start', machines: [startMachine, coldBootMachine, captureMachine, resumeMachine].map((machine) => machineGraph(machine, run.bounds)) };
}
