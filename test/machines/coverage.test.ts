import { createActor, fromPromise, SimulatedClock, type AnyStateMachine, type EventObject } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import { captureMachine } from '../../machines/capture.js';
import { coldBootMachine } from '../../machines/cold-boot.js';
import { resumeMachine } from '../../machines/resume.js';
import { startMachine } from '../../machines/start.js';
import { stopMachine } from '../../machines/stop.js';
import { uniformBounds } from '../helpers/fake-world.js';

/*
 * Every state of every machine is reached by some path, finals included: xstate/graph walks each
 * machine over the done and error events of the actors it invokes (with each output that steers a
 * guard), its bounds' `after` events and Ctrl-C; each shortest path is then replayed on a real
 * actor to see the transient states (entered and left within one step) as well.
 */

const failure = (state: string, code: string) => ({ state, code, message: 'fake', hint: undefined });
const health = [{ url: 'http://127.0.0.1:1/health', status: 200 }];

/** What each invoked actor may answer: one entry per answer a guard tells apart. */
const OUTPUTS: Record<string, unknown[]> = {
  preflight: [{ qemuVersion: '10.0.2', machineType: 'pc-q35-10.0' }],
  prepareImage: [{ image: 'demo', built: false }],
  chooseAccelerator: [{ accel: 'tcg', reason: 'fake' }],
  chooseSnapshot: [
    { status: 'usable', failuresInARow: 0 },
    { status: 'usable', failuresInARow: 1 },
    { status: 'missing' },
    { status: 'setAside', reason: 'QEMU changed' },
    { status: 'capturing', holder: 4242 },
  ],
  awaitCapture: [{ status: 'usable', failuresInARow: 0 }, { status: 'missing' }],
  setAsideSnapshot: [
    { setAside: '/x.set-aside', capturing: true },
    { setAside: '/x.set-aside', capturing: false },
  ],
  findSuspended: [{ status: 'wakeable', suspendedAt: '2026-12-02T00:00:00.000Z', secrets: true }, { status: 'none' }, { status: 'setAside', reason: 'the config changed' }],
  pullSnapshot: [
    { status: 'usable', failuresInARow: 0, digest: 'sha256:fake' },
    { status: 'failed', reason: 'the registry is down' },
  ],
  coldBoot: [
    { outcome: 'ready', pid: 1, health, rotated: true },
    { outcome: 'failed', failure: failure('coldBoot.booting', 'E_X'), stopError: undefined },
    { outcome: 'failed', failure: failure('coldBoot.booting', 'E_QEMU_CRASHED'), stopError: undefined },
  ],
  capture: [
    { outcome: 'captured', snapshot: '/x' },
    { outcome: 'kept', pid: 1, health, rotated: true, warning: 'the capture failed in capture.migrating (E_X)' },
    { outcome: 'failed', failure: failure('capture.migrating', 'E_X'), stopError: undefined },
    { outcome: 'failed', failure: failure('capture.migrating', 'E_X'), stopError: 'QEMU did not stop' },
  ],
  resume: [
    { outcome: 'healthy', pid: 1, health, rotated: true },
    { outcome: 'failed', failure: failure('resume.preparing', 'E_SNAPSHOT_CORRUPT'), stopError: undefined },
    { outcome: 'failed', failure: failure('resume.rotating', 'E_ROTATE'), stopError: undefined },
    { outcome: 'failed', failure: failure('resume.probing', 'E_HEALTH'), stopError: undefined },
    { outcome: 'failed', failure: failure('resume.rotating', 'E_ROTATE'), stopError: 'QEMU did not stop' },
  ],
  prepareBoot: [{ forwards: 1, overlay: true, runtimeDisk: true }],
  launchQemu: [{ pid: 1 }],
  waitForGuest: [{ runstate: 'running', agent: true }],
  rotateSecrets: [{ secrets: 1, exitCode: 0 }],
  probeHealth: [health],
  stopQemu: [{ how: 'terminated' }],
  prepareState: [{ checked: [], forwards: 1, overlay: true }],
  launchIncoming: [{ pid: 1 }],
  migrateIncoming: [{ runstate: 'paused' }, { runstate: 'running' }],
  cont: [{ runstate: 'running' }],
  pauseVm: [{ runstate: 'paused' }],
  migrateToFile: [{ stateBytes: 1, ms: 1 }],
  quitQemu: [{ exited: true }],
  storeSnapshot: [{ snapshot: '/x', memoryDataBytes: 1 }],
  recoverVm: [{ dropped: [] }],
  continueVm: [{ runstate: 'running', pid: 1 }],
  findInstance: [
    { pid: 1, running: true, leftovers: [] },
    { pid: 1, running: false, leftovers: ['/x/qemu.pid'] },
    { pid: undefined, running: false, leftovers: [] },
  ],
  terminate: [{ gone: true }],
  kill: [{ gone: true }],
  clean: [{ removed: [] }],
  suspend: [{ dir: '/x/suspended', stateBytes: 1, ms: 1 }],
};

interface StateNodeLike {
  id: string;
  states: Record<string, StateNodeLike>;
  invoke: { id: string; src: unknown }[];
  after: { eventType: string }[];
}

/** The events that can happen in a snapshot: its actors' answers, its bounds, Ctrl-C. */
function possibleEvents(snapshot: { _nodes: StateNodeLike[] }): EventObject[] {
  const events: EventObject[] = [{ type: 'CANCEL' }];
  for (const node of snapshot._nodes) {
    for (const invoke of node.invoke) {
      const outputs = OUTPUTS[String(invoke.src)];
      if (!outputs) throw new Error(`no fake outputs for actor ${String(invoke.src)} (state ${node.id})`);
      for (const output of outputs) events.push({ type: `xstate.done.actor.${invoke.id}`, output } as EventObject);
      events.push({ type: `xstate.error.actor.${invoke.id}`, error: Object.assign(new Error('fake'), { code: 'E_X' }) } as EventObject);
    }
    for (const transition of node.after) events.push({ type: transition.eventType });
  }
  return events;
}

function allStates(machine: AnyStateMachine): string[] {
  const ids: string[] = [];
  const walk = (node: StateNodeLike): void => {
    for (const child of Object.values(node.states)) {
      ids.push(child.id);
      walk(child);
    }
  };
  walk(machine.root as unknown as StateNodeLike);
  return ids.sort();
}

/** Runs each shortest path on a real actor whose own actors never answer, recording every state entered. */
function reachedStates(machine: AnyStateMachine, inputs: unknown[]): Set<string> {
  const never = fromPromise(() => new Promise<never>(() => undefined));
  const actors = Object.fromEntries(Object.keys(OUTPUTS).map((name) => [name, never]));
  const quiet = machine.provide({ actors } as never);
  const reached = new Set<string>();
  for (const input of inputs) {
    for (const path of getShortestPaths(machine, { input, events: possibleEvents as never })) {
      const actor = createActor(quiet, {
        input,
        clock: new SimulatedClock(),
        inspect: (inspection) => {
          if (inspection.type !== '@xstate.microstep' && inspection.type !== '@xstate.snapshot') return;
          if (inspection.actorRef !== actor) return;
          const value = (inspection.snapshot as { value?: unknown }).value;
          if (typeof value === 'string') reached.add(`${machine.id}.${value}`);
        },
      });
      actor.start();
      for (const step of path.steps.slice(1)) actor.send(step.event);
      actor.stop();
    }
  }
  return reached;
}

const bounds = uniformBounds();
const flagSets = [false, true].flatMap((a) => [false, true].flatMap((b) => [false, true].map((c) => [a, b, c] as const)));

describe('every state of every machine is reachable', () => {
  const cases: [string, AnyStateMachine, unknown[]][] = [
    ['start', startMachine, flagSets.flatMap(([forceCold, capture, rotation]) => [false, true].map((pull) => ({ bounds, forceCold, capture, rotation, pull })))],
    ['coldBoot', coldBootMachine, flagSets.map(([rotation, capturing]) => ({ bounds, rotation, capturing }))],
    ['resume', resumeMachine, [true, false].flatMap((rotation) => [false, true].map((kept) => ({ bounds, rotation, kept })))],
    ['capture', captureMachine, [{ bounds }, { bounds, keep: { rotation: true } }, { bounds, keep: { rotation: false } }]],
    ['stop', stopMachine, [false, true].map((suspend) => ({ bounds: { checkMs: 1_000, termMs: 1_000, killMs: 1_000, cleanMs: 1_000, suspendMs: 1_000 }, suspend }))],
  ];
  for (const [name, machine, inputs] of cases) {
    it(`${name}: each state, and each final state, is entered on some path`, () => {
      const reached = reachedStates(machine, inputs);
      expect([...reached].sort()).toEqual(allStates(machine));
    });
  }

  it('a state that no walk enters shows up as missing: the check can fail', () => {
    // With rotation always on, nothing passes through `unrotated`.
    const reached = reachedStates(coldBootMachine, [{ bounds, rotation: true, capturing: false }]);
    expect(allStates(coldBootMachine).filter((state) => !reached.has(state))).toEqual(['coldBoot.unrotated']);
  });
});
