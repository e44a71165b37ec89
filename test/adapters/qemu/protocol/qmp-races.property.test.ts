import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { QmpClient, type QmpEvent } from '../../../../adapters/qemu/protocol/qmp-client.js';
import { summarizeCall, type CallSummary } from '../../../helpers/call-summary.js';
import type { CommandHandler, FakePeer, FakeRequest, FakeServer } from '../../../helpers/fake-json-lines-server.js';
import { startFakeQmpServer } from '../../../helpers/fake-qmp-server.js';
import { withFakeTimeouts } from '../../../helpers/fake-timeouts.js';
import { Outcomes, nextTurn, until } from '../../../helpers/outcomes.js';
import { propertyParams } from '../../../helpers/property-params.js';
import { schedulerSeedArb, seededScheduler } from '../../../helpers/seeded-scheduler.js';

/**
 * Races on one QMP connection. The client sends a few commands (each with its own id); a fake
 * QEMU on a real socket answers them, emits events, lets time pass and may exit, and
 * fc.scheduler picks the order of all of it. A small model replays the order actually taken and
 * says how every call must end; the client must agree, call by call and event by event.
 *
 * Time is vi's fake setTimeout: "time passes" is a step like the others, so a short timeout
 * fires exactly where the scheduler puts it, and long ones never do.
 */

const COMMAND_NAMES = ['query-status', 'stop', 'cont', 'query-migrate', 'migrate'] as const;
const EVENT_NAMES = ['STOP', 'RESUME', 'MIGRATION'] as const;
const SHORT_MS = 1_000;
const LONG_MS = 1_000_000;
/** One "time passes" step: past every short timeout, far from the long ones. */
const TICK_MS = 2_000;
/** An event only this test sends: once the client has seen it, it has read everything before it. */
const MARK = 'TEST_MARK';

type Reply = { kind: 'return'; status: string } | { kind: 'error'; errorClass: string };

interface CommandPlan {
  name: string;
  /** What QEMU answers; undefined: it never does. */
  reply: Reply | undefined;
  shortTimeout: boolean;
}

interface Plan {
  /** Seeds the fc.scheduler that orders everything below. */
  schedule: number;
  commands: CommandPlan[];
  events: string[];
  ticks: number;
  hangUp: boolean;
}

/** What the fake QEMU did, in the order the scheduler let it. */
type Step = { kind: 'send'; k: number } | { kind: 'reply'; k: number } | { kind: 'event'; j: number } | { kind: 'tick' } | { kind: 'hangUp' };

/** How a call ended, in a form that compares with toEqual. */
type Summary = CallSummary<'Qmp'>;

interface EventSeen {
  event: string;
  tag: number;
  data: unknown;
}

interface RunResult {
  commands: Summary[];
  /** What each of the two subscribers received. */
  events: EventSeen[][];
  resume: Summary;
  shutdown: Summary;
  /** byPeer of every onClose call. */
  closes: boolean[];
}

const replyArb: fc.Arbitrary<Reply | undefined> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('running', 'paused', 'postmigrate').map((status): Reply => ({ kind: 'return', status })) },
  { weight: 1, arbitrary: fc.constantFrom('GenericError', 'CommandNotFound', 'DeviceNotFound').map((errorClass): Reply => ({ kind: 'error', errorClass })) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const planArb: fc.Arbitrary<Plan> = fc.record({
  schedule: schedulerSeedArb,
  commands: fc.array(fc.record({ name: fc.constantFrom(...COMMAND_NAMES), reply: replyArb, shortTimeout: fc.boolean() }), { minLength: 1, maxLength: 5 }),
  events: fc.array(fc.constantFrom(...EVENT_NAMES), { maxLength: 5 }),
  ticks: fc.integer({ min: 0, max: 2 }),
  hangUp: fc.boolean(),
});

const replyValue = (k: number, reply: Extract<Reply, { kind: 'return' }>): unknown => ({ tag: k, status: reply.status });
const errorDesc = (k: number): string => `refused command #${k}`;
const eventData = (name: string): unknown => (name === 'MIGRATION' ? { status: 'active' } : undefined);

// ---------------------------------------------------------------------------------------------
// The fake QEMU: one server for the whole file, one connection per run. It holds every command
// until the scheduler says to answer it.

interface Connection {
  peer: FakePeer | undefined;
  held: Map<number, { request: FakeRequest; peer: FakePeer }>;
}

let connection: Connection = { peer: undefined, held: new Map() };
let server: FakeServer;

const hold: CommandHandler = (request, peer) => {
  connection.held.set(Number(request.arguments?.tag), { request, peer });
};

beforeAll(async () => {
  server = await startFakeQmpServer({
    commands: Object.fromEntries(COMMAND_NAMES.map((name) => [name, hold])),
    onConnect: (peer) => {
      connection.peer = peer;
    },
  });
});

afterAll(async () => {
  await server.stop();
});

// ---------------------------------------------------------------------------------------------

async function runRaces(plan: Plan): Promise<void> {
  const s = seededScheduler(plan.schedule);
  connection = { peer: undefined, held: new Map() };
  const client = await QmpClient.connect(server.socketPath, { timeoutMs: LONG_MS });
  try {
    const peer = connection.peer;
    if (!peer) throw new Error('the fake QEMU saw no connection');
    const log: Step[] = [];
    const calls = new Outcomes<number>();
    const waits = new Outcomes<'RESUME' | 'SHUTDOWN'>();
    const seen: EventSeen[][] = [[], []];
    for (const list of seen) {
      client.onEvent((event) => {
        if (event.event !== MARK) list.push(eventSeen(event));
      });
    }
    const closes: boolean[] = [];
    client.onClose((error) => closes.push(error.byPeer));
    waits.track('RESUME', client.waitForEvent('RESUME', { timeoutMs: LONG_MS }));
    waits.track('SHUTDOWN', client.waitForEvent('SHUTDOWN', { timeoutMs: SHORT_MS }));
    let hungUp = false;
    let marks = 0;

    /** Waits until the client has read everything written so far. */
    const flush = async (): Promise<void> => {
      const id = (marks += 1);
      let arrived = false;
      const off = client.onEvent((event) => {
        if (event.event === MARK && event.timestamp.microseconds === id) arrived = true;
      });
      peer.send({ event: MARK, timestamp: { seconds: 0, microseconds: id } });
      try {
        await until(() => arrived, 'the client to read a marker event');
      } finally {
        off();
      }
    };

    const send = async (k: number): Promise<void> => {
      log.push({ kind: 'send', k });
      const command = plan.commands[k]!;
      calls.track(k, client.execute(command.name, { tag: k }, { timeoutMs: command.shortTimeout ? SHORT_MS : LONG_MS }));
      if (!hungUp) await until(() => connection.held.has(k), `QEMU to receive command #${k}`);
    };
    const reply = async (k: number): Promise<void> => {
      log.push({ kind: 'reply', k });
      const held = connection.held.get(k);
      const planned = plan.commands[k]!.reply!;
      if (!held) return; // sent after QEMU had gone
      if (planned.kind === 'return') held.peer.reply(held.request, replyValue(k, planned));
      else held.peer.fail(held.request, planned.errorClass, errorDesc(k));
    };
    const event = async (j: number): Promise<void> => {
      log.push({ kind: 'event', j });
      const name = plan.events[j]!;
      const data = eventData(name);
      peer.send({ event: name, ...(data === undefined ? {} : { data }), timestamp: { seconds: 1700000000, microseconds: j } });
    };
    const tick = async (): Promise<void> => {
      log.push({ kind: 'tick' });
      if (!hungUp) await flush();
      vi.advanceTimersByTime(TICK_MS);
      await nextTurn();
    };
    const hangUp = async (): Promise<void> => {
      log.push({ kind: 'hangUp' });
      hungUp = true;
      peer.hangUp();
      await until(() => client.closed, 'the client to see QEMU hang up');
      await nextTurn();
    };

    // Each command's send and reply form one sequence (a reply needs its request); everything
    // else is free to go anywhere. A step that throws is kept, so the failure says why.
    const failures: unknown[] = [];
    const step = (action: () => Promise<void>) => async (): Promise<void> => {
      try {
        await action();
      } catch (error) {
        failures.push(error);
        throw error;
      }
    };
    const sequences = [
      ...plan.commands.map((command, k) =>
        s.scheduleSequence([
          { label: `send ${command.name} #${k}`, builder: step(() => send(k)) },
          ...(command.reply ? [{ label: `${command.reply.kind} for #${k}`, builder: step(() => reply(k)) }] : []),
        ]),
      ),
      ...plan.events.map((name, j) => s.scheduleSequence([{ label: `event ${name} #${j}`, builder: step(() => event(j)) }])),
      ...Array.from({ length: plan.ticks }, () => s.scheduleSequence([{ label: 'time passes', builder: step(tick) }])),
      ...(plan.hangUp ? [s.scheduleSequence([{ label: 'QEMU exits', builder: step(hangUp) }])] : []),
    ];
    await s.waitFor(Promise.all(sequences.map((sequence) => sequence.task)));
    if (failures.length > 0) throw new Error(`a step failed: ${String(failures[0])}\n${s.toString()}`, { cause: failures[0] });

    // The run ends with warmvm closing the connection, after reading all QEMU wrote.
    if (!hungUp) {
      await flush();
      await client.close();
    }
    await nextTurn();
    const actual: RunResult = {
      commands: plan.commands.map((_command, k) => summarizeCall('qmp', calls.get(k))),
      events: seen,
      resume: summarizeCall('qmp', waits.get('RESUME'), (value) => eventSeen(value as QmpEvent)),
      shutdown: summarizeCall('qmp', waits.get('SHUTDOWN')),
      closes,
    };
    expect(actual, `in the order ${s.toString()}`).toEqual(expectedRun(plan, log));
  } finally {
    await client.close();
  }
}

/** The model: how each call must end, given the order the fake QEMU acted in. */
function expectedRun(plan: Plan, log: Step[]): RunResult {
  type State = Summary | 'waiting';
  const commands: State[] = plan.commands.map(() => ({ outcome: 'pending' }));
  const events: EventSeen[] = [];
  let resume: State = 'waiting';
  let shutdown: State = 'waiting';
  let connected = true;
  const operation = (k: number): string => `command "${plan.commands[k]!.name}"`;
  const disconnect = (byPeer: boolean): void => {
    commands.forEach((state, k) => {
      if (state === 'waiting') commands[k] = { outcome: 'QmpDisconnectedError', operation: operation(k), byPeer };
    });
    if (resume === 'waiting') resume = { outcome: 'QmpDisconnectedError', operation: 'waiting for event RESUME', byPeer };
    if (shutdown === 'waiting') shutdown = { outcome: 'QmpDisconnectedError', operation: 'waiting for event SHUTDOWN', byPeer };
  };

  for (const step of log) {
    if (step.kind === 'send') {
      commands[step.k] = connected ? 'waiting' : { outcome: 'QmpDisconnectedError', operation: operation(step.k), byPeer: true };
    } else if (step.kind === 'reply') {
      const { name, reply } = plan.commands[step.k]!;
      if (!connected || commands[step.k] !== 'waiting' || !reply) continue;
      commands[step.k] =
        reply.kind === 'return'
          ? { outcome: 'returned', value: replyValue(step.k, reply) }
          : { outcome: 'QmpExecuteError', command: name, errorClass: reply.errorClass, desc: errorDesc(step.k) };
    } else if (step.kind === 'event') {
      if (!connected) continue;
      const name = plan.events[step.j]!;
      const seen = { event: name, tag: step.j, data: eventData(name) };
      events.push(seen);
      if (resume === 'waiting' && name === 'RESUME') resume = { outcome: 'returned', value: seen };
    } else if (step.kind === 'tick') {
      if (!connected) continue;
      commands.forEach((state, k) => {
        if (state === 'waiting' && plan.commands[k]!.shortTimeout) commands[k] = { outcome: 'QmpTimeoutError', operation: operation(k) };
      });
      if (shutdown === 'waiting') shutdown = { outcome: 'QmpTimeoutError', operation: 'waiting for event SHUTDOWN' };
    } else if (connected) {
      connected = false;
      disconnect(true);
    }
  }
  const closedByPeer = !connected;
  if (connected) disconnect(false);
  const settled = (state: State): Summary => (state === 'waiting' ? { outcome: 'pending' } : state);
  return {
    commands: commands.map(settled),
    events: [events, [...events]],
    resume: settled(resume),
    shutdown: settled(shutdown),
    closes: [closedByPeer],
  };
}

function eventSeen(event: QmpEvent): EventSeen {
  return { event: event.event, tag: event.timestamp.microseconds, data: event.data };
}

describe('QmpClient under races (fc.scheduler)', () => {
  it('ends every call with its own reply or the right typed error, and delivers every event in order', () =>
    withFakeTimeouts(() => fc.assert(fc.asyncProperty(planArb, runRaces), propertyParams(200))));
});
