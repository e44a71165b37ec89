import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { QgaClient } from '../../../../adapters/qemu/protocol/qga-client.js';
import { summarizeCall, type CallSummary } from '../../../helpers/call-summary.js';
import type { CommandHandler, FakePeer, FakeRequest } from '../../../helpers/fake-json-lines-server.js';
import { startFakeQgaServer, type FakeQga } from '../../../helpers/fake-qga-server.js';
import { withFakeTimeouts } from '../../../helpers/fake-timeouts.js';
import { Outcomes, nextTurn, until } from '../../../helpers/outcomes.js';
import { commandsReplayPath, propertyParams } from '../../../helpers/property-params.js';

/**
 * Races on one guest agent connection, as a model-based test (fc.commands): the agent answers
 * one request at a time, without ids, so a reply that comes after its caller gave up is the
 * dangerous one. Steps: the client queues a call; the agent answers its oldest unanswered
 * request (possibly one the client gave up on); time passes (the request in flight times out);
 * QEMU hangs up. After each step the model says which requests the agent must have received
 * (a guest-sync-delimited first after any timeout) and how every call must have ended.
 *
 * Time is vi's fake setTimeout: only the request in flight has a timer, and "time passes" fires it.
 */

const CALL_NAMES = ['guest-info', 'guest-get-time', 'guest-ping'] as const;
const TIMEOUT_MS = 1_000;
const SYNC = 'guest-sync-delimited';

type Reply = { kind: 'return'; status: string } | { kind: 'error'; errorClass: string };

interface CallPlan {
  name: string;
  reply: Reply;
}

/** A request on the wire, as the model names it. */
type Wire = { kind: 'sync' } | { kind: 'call'; k: number };

/** How a call ended, in a form that compares with toEqual. */
type Summary = CallSummary<'Qga'>;

interface Model {
  connected: boolean;
  calls: CallPlan[];
  /** How each settled call ended. */
  ended: Map<number, Summary>;
  /** Calls issued and not ended, oldest first; the first is the one in flight, if any is. */
  queue: number[];
  inFlight: Wire | undefined;
  /** Every request the agent received, in order. */
  sent: Wire[];
  /** Received and not answered yet, oldest first (the agent answers in order). */
  unanswered: Wire[];
  /** Set by a timeout: the next request must begin with a sync. */
  needsSync: boolean;
}

interface Held {
  request: FakeRequest;
  peer: FakePeer;
}

interface Real {
  client: QgaClient;
  calls: Outcomes<number>;
  connection: Connection;
}

/** The fake agent's side of the current run's connection. */
interface Connection {
  peer: FakePeer | undefined;
  /** Answer syncs at once (while connecting) instead of holding them. */
  autoSync: boolean;
  received: Held[];
  unanswered: Held[];
}

const replyValue = (k: number, status: string): unknown => ({ tag: k, status });
const errorDesc = (k: number): string => `refused call #${k}`;
const quoted = (name: string): string => `"${name}"`;

// ---------------------------------------------------------------------------------------------
// The fake agent: one server for the file, one connection per run.

let server: FakeQga;
let connection: Connection = { peer: undefined, autoSync: true, received: [], unanswered: [] };

const writeSyncReply = (held: Held): void => {
  held.peer.sendRaw(Buffer.concat([Buffer.from([0xff]), Buffer.from(`${JSON.stringify({ return: held.request.arguments?.id })}\n`)]));
};

const hold: CommandHandler = (request, peer) => {
  connection.peer = peer;
  const held = { request, peer };
  if (connection.autoSync && request.execute === SYNC) return writeSyncReply(held);
  connection.received.push(held);
  connection.unanswered.push(held);
};

beforeAll(async () => {
  server = await startFakeQgaServer({ commands: Object.fromEntries([SYNC, ...CALL_NAMES].map((name) => [name, hold])) });
});

afterAll(async () => {
  await server.stop();
});

// ---------------------------------------------------------------------------------------------
// The model's rules.

/** The client sends the next request when none is in flight: a sync first if one is owed. */
function sendNext(model: Model): void {
  const next = model.queue[0];
  if (!model.connected || model.inFlight || next === undefined) return;
  model.inFlight = model.needsSync ? { kind: 'sync' } : { kind: 'call', k: next };
  model.sent.push(model.inFlight);
  model.unanswered.push(model.inFlight);
}

/** The call in flight (or waiting for its sync) ends; the next one starts. */
function endInFlight(model: Model, summary: Summary): void {
  const k = model.queue.shift();
  if (k === undefined) throw new Error('model: nothing in flight');
  model.ended.set(k, summary);
  model.inFlight = undefined;
  sendNext(model);
}

function disconnect(model: Model, byPeer: boolean): void {
  model.queue.forEach((k, index) => {
    const operation = index === 0 && model.inFlight?.kind === 'sync' ? quoted(SYNC) : quoted(model.calls[k]!.name);
    model.ended.set(k, { outcome: 'QgaDisconnectedError', operation, byPeer });
  });
  model.queue = [];
  model.inFlight = undefined;
  model.unanswered = [];
}

// ---------------------------------------------------------------------------------------------
// Checking the real client against the model.

function wireOf(held: Held): Wire {
  return held.request.execute === SYNC ? { kind: 'sync' } : { kind: 'call', k: Number(held.request.arguments?.tag) };
}

/** Waits until the real client has done what the model says, then compares. */
async function settleAndCheck(model: Model, real: Real): Promise<void> {
  await until(() => real.connection.received.length >= model.sent.length && [...model.ended.keys()].every((k) => real.calls.has(k)), 'the client to catch up with the model').catch(
    () => undefined,
  ); // the comparison below says what differs
  await nextTurn();
  expect(real.connection.received.map(wireOf), 'requests the agent received').toEqual(model.sent);
  expect(
    model.calls.map((_call, k) => summarizeCall('qga', real.calls.get(k))),
    'how each call ended',
  ).toEqual(model.calls.map((_call, k) => model.ended.get(k) ?? { outcome: 'pending' }));
}

// ---------------------------------------------------------------------------------------------
// The steps.

class IssueCall implements fc.AsyncCommand<Model, Real> {
  constructor(readonly plan: CallPlan) {}
  check = (): boolean => true;
  async run(model: Model, real: Real): Promise<void> {
    const k = model.calls.length;
    model.calls.push(this.plan);
    real.calls.track(k, real.client.execute(this.plan.name, { tag: k }, { timeoutMs: TIMEOUT_MS }));
    if (model.connected) {
      model.queue.push(k);
      sendNext(model);
    } else {
      model.ended.set(k, { outcome: 'QgaDisconnectedError', operation: quoted(this.plan.name), byPeer: true });
    }
    await settleAndCheck(model, real);
  }
  toString = (): string => `call ${this.plan.name} (${this.plan.reply.kind === 'return' ? 'returns' : this.plan.reply.errorClass})`;
}

class AgentAnswers implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>): boolean => model.connected && model.unanswered.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const wire = model.unanswered.shift()!;
    const held = real.connection.unanswered.shift();
    if (!held) throw new Error('the fake agent holds no request to answer');
    if (wire.kind === 'sync') {
      writeSyncReply(held);
      if (wire === model.inFlight) {
        model.needsSync = false;
        model.inFlight = undefined;
        sendNext(model);
      }
    } else {
      const { name, reply } = model.calls[wire.k]!;
      if (reply.kind === 'return') held.peer.reply(held.request, replyValue(wire.k, reply.status));
      else held.peer.fail(held.request, reply.errorClass, errorDesc(wire.k));
      if (wire === model.inFlight) {
        endInFlight(
          model,
          reply.kind === 'return'
            ? { outcome: 'returned', value: replyValue(wire.k, reply.status) }
            : { outcome: 'QgaExecuteError', command: name, errorClass: reply.errorClass, desc: errorDesc(wire.k) },
        );
      }
      // Otherwise the caller gave up on it: the reply is stale and must reach no one.
    }
    await settleAndCheck(model, real);
  }
  toString = (): string => 'agent answers its oldest request';
}

class TimePasses implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>): boolean => model.connected && model.inFlight !== undefined;
  async run(model: Model, real: Real): Promise<void> {
    const k = model.queue[0]!;
    const operation = model.inFlight?.kind === 'sync' ? quoted(SYNC) : quoted(model.calls[k]!.name);
    model.needsSync = true;
    endInFlight(model, { outcome: 'QgaTimeoutError', operation });
    vi.advanceTimersByTime(TIMEOUT_MS);
    await settleAndCheck(model, real);
  }
  toString = (): string => 'time passes';
}

class QemuHangsUp implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>): boolean => model.connected;
  async run(model: Model, real: Real): Promise<void> {
    model.connected = false;
    disconnect(model, true);
    real.connection.peer?.hangUp();
    await until(() => real.client.closed, 'the client to see QEMU hang up');
    await settleAndCheck(model, real);
  }
  toString = (): string => 'QEMU hangs up';
}

const replyArb: fc.Arbitrary<Reply> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('ok', 'busy').map((status): Reply => ({ kind: 'return', status })) },
  { weight: 1, arbitrary: fc.constantFrom('GenericError', 'CommandNotFound').map((errorClass): Reply => ({ kind: 'error', errorClass })) },
);
const issueArb = fc.record({ name: fc.constantFrom(...CALL_NAMES), reply: replyArb }).map((plan) => new IssueCall(plan));
const answerArb = fc.constant(new AgentAnswers());
const timeArb = fc.constant(new TimePasses());
// A hang-up ends the interesting part of a run: make it rarer than the rest.
const stepsArb = fc.commands([issueArb, issueArb, issueArb, answerArb, answerArb, answerArb, timeArb, timeArb, fc.constant(new QemuHangsUp())], {
  maxCommands: 20,
  replayPath: commandsReplayPath(),
});

async function runSteps(steps: Iterable<fc.AsyncCommand<Model, Real>>): Promise<void> {
  connection = { peer: undefined, autoSync: true, received: [], unanswered: [] };
  const client = await QgaClient.connect(server.socketPath, { timeoutMs: TIMEOUT_MS });
  connection.autoSync = false;
  const model: Model = { connected: true, calls: [], ended: new Map(), queue: [], inFlight: undefined, sent: [], unanswered: [], needsSync: false };
  const real: Real = { client, calls: new Outcomes(), connection };
  try {
    await fc.asyncModelRun(() => ({ model, real }), steps);
    // The run ends with warmvm closing the connection: whatever still waits fails as closed by us.
    if (model.connected) {
      disconnect(model, false);
      await client.close();
      await settleAndCheck(model, real);
    }
  } finally {
    await client.close();
  }
}

describe('QgaClient under races (fc.commands)', () => {
  it('ends every call with its own reply or the right typed error; a late reply never reaches another call', () =>
    withFakeTimeouts(() => fc.assert(fc.asyncProperty(stepsArb, runSteps), propertyParams(500))));
});
