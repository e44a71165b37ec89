import type { Socket } from 'node:net';
import { redactedJson } from '../../support/redact.js';
import type { Settle } from './bounded-wait.js';
import { connectSocket, connectSocketWhenListening } from './connect.js';
import { JsonLinesConnection, type ClientLogger } from './connection.js';
import { QmpExecuteError, QmpGreetingError, QmpNegotiationError, QmpStateError, type ErrorContext } from './errors.js';
import { isJsonObject, type JsonObject } from './framing.js';

/**
 * A client for QEMU's machine protocol (QMP) on a unix socket, shaped after QEMU's own Python
 * `qemu.qmp`: the shared JSON-lines connection (./connection.ts) plus QMP's handshake (the
 * greeting, then `qmp_capabilities`), a unique id per command, and events delivered to listeners
 * without ever touching pending commands. It fails with the Qmp* errors of ./errors.ts.
 */

/** QEMU's version, from its greeting. */
export interface QmpVersion {
  major: number;
  minor: number;
  micro: number;
  /** The distribution's build string, e.g. "Debian 1:10.0.2+ds-1~bpo12+1"; may be empty. */
  package: string;
}

/** One asynchronous message from QEMU (STOP, RESUME, MIGRATION, …). */
export interface QmpEvent {
  event: string;
  /** Absent for events without data (STOP, RESUME): then undefined. */
  data: unknown;
  timestamp: { seconds: number; microseconds: number };
}

/** Options of QmpClient.connect. */
export interface QmpConnectOptions {
  /** Bound for the whole handshake: connect, greeting, capabilities. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  logger?: ClientLogger;
}

/** Options of QmpClient.connectWhenReady. */
export interface QmpConnectWhenReadyOptions {
  /** How long to keep trying, in ms from the call (a duration, not a point in time). */
  deadlineMs: number;
  signal?: AbortSignal;
  logger?: ClientLogger;
  /** Pause between attempts while the socket is missing or refuses. Default 20 ms. */
  retryIntervalMs?: number;
}

/** Options of QmpClient.execute. */
export interface QmpExecuteOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Options of QmpClient.waitForEvent. */
export interface QmpWaitForEventOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  predicate?: (event: QmpEvent) => boolean;
}

interface Greeting {
  version: QmpVersion;
  capabilities: string[];
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_EXECUTE_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_INTERVAL_MS = 20;

/** A QMP connection past its handshake: commands, events, and the connection's state and exchanges. */
export class QmpClient extends JsonLinesConnection {
  private readonly eventListeners = new Set<(event: QmpEvent) => void>();
  private greetingSlot: Settle<JsonObject> | undefined;
  private greeted: Greeting | undefined;
  private nextId = 0;

  private constructor(socketPath: string, socket: Socket, logger: ClientLogger | undefined) {
    super('qmp', socketPath, socket, logger);
  }

  /** Connects, reads the greeting and negotiates capabilities; the client is ready for commands. */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    const socket = await connectSocket('qmp', socketPath, opts.signal);
    return new QmpClient(socketPath, socket, opts.logger).start(deadline, opts.signal);
  }

  /**
   * Connects as soon as QEMU has created and opened its socket: retries while the socket is
   * missing or refuses, every ~20 ms, for `deadlineMs`. Any other failure (a bad greeting, a
   * refused negotiation) is final and thrown at once.
   */
  static async connectWhenReady(socketPath: string, opts: QmpConnectWhenReadyOptions): Promise<QmpClient> {
    const deadline = Date.now() + opts.deadlineMs;
    const retryIntervalMs = opts.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS;
    const socket = await connectSocketWhenListening('qmp', socketPath, { deadline, deadlineMs: opts.deadlineMs, signal: opts.signal, retryIntervalMs });
    return new QmpClient(socketPath, socket, opts.logger).start(deadline, opts.signal);
  }

  /** QEMU's version, from the greeting. */
  get version(): QmpVersion {
    return { ...this.handshakeResult('version').version };
  }

  /** Capabilities QEMU offered in its greeting (e.g. "oob"); none is enabled by this client. */
  get capabilities(): readonly string[] {
    return [...this.handshakeResult('capabilities').capabilities];
  }

  /**
   * Runs one command and resolves with its `return` value. `T` is what the caller expects QEMU
   * to return; it is not checked.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions = {}): Promise<T> {
    return this.command<T>(command, args, opts.timeoutMs ?? DEFAULT_EXECUTE_TIMEOUT_MS, opts.signal);
  }

  /** Calls `listener` for every event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => {
      this.eventListeners.delete(listener);
    };
  }

  /**
   * Resolves with the next event named `name` (that `predicate` accepts). Only events that arrive
   * after the call count, and QEMU sends RESUME, STOP and SHUTDOWN *before* its reply to `cont`,
   * `stop` and `quit`: start waiting before sending the command, e.g.
   * `const [, resumed] = await Promise.all([client.execute('cont'), client.waitForEvent('RESUME', …)])`
   * (Promise.all also keeps a failed command from leaving the wait's rejection unhandled).
   */
  waitForEvent(name: string, opts: QmpWaitForEventOptions): Promise<QmpEvent> {
    const hint = `QEMU did not emit ${name}: see the last QMP exchanges for what it did emit`;
    const options = { operation: `waiting for event ${name}`, timeoutMs: opts.timeoutMs, signal: opts.signal, hint };
    return this.wait<QmpEvent>(options, (settle) =>
      this.onEvent((event) => {
        if (event.event !== name) return;
        try {
          if (opts.predicate && !opts.predicate(event)) return;
        } catch (error) {
          settle.reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        settle.resolve(event);
      }),
    );
  }

  // -------------------------------------------------------------------------------------------

  /** Runs the handshake within the deadline; a client that fails it is closed before the error is thrown. */
  private async start(deadline: number, signal: AbortSignal | undefined): Promise<QmpClient> {
    try {
      await this.handshake(deadline, signal);
      return this;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  private async handshake(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    const greeting = await this.wait<JsonObject>(
      {
        operation: 'the greeting',
        timeoutMs: deadline - Date.now(),
        signal,
        hint: 'QEMU serves one QMP client at a time on a socket: another client may be connected; otherwise QEMU is hung',
      },
      (settle) => {
        this.greetingSlot = settle;
        return () => {
          this.greetingSlot = undefined;
        };
      },
    );
    this.greeted = parseGreeting(this.errorContext(), greeting);
    try {
      await this.command('qmp_capabilities', undefined, deadline - Date.now(), signal);
    } catch (error) {
      throw error instanceof QmpExecuteError ? new QmpNegotiationError(this.errorContext(), error) : error;
    }
    this.markOpen();
    this.log?.debug({ socketPath: this.socketPath, version: this.greeted.version }, 'QMP connected');
  }

  private handshakeResult(what: string): Greeting {
    // connect() returns only after the handshake, so this holds for every client a caller has.
    if (!this.greeted) throw new QmpStateError(this.errorContext(), `${what} read`);
    return this.greeted;
  }

  private command<T>(command: string, args: Record<string, unknown> | undefined, timeoutMs: number, signal: AbortSignal | undefined): Promise<T> {
    this.nextId += 1;
    const id = `warmvm-${this.nextId}`;
    const message: JsonObject = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    // Ids keep the stream in step: a late reply to a command given up on matches nothing.
    return this.send<T>({ command, message, operation: `command "${command}"`, timeoutMs, signal, matches: (reply) => reply.id === id });
  }

  /** The greeting (once, before it is parsed) and events are QMP's own; replies go to the connection. */
  protected override takeMessage(message: JsonObject): boolean {
    if (!this.greeted && this.greetingSlot) {
      this.record('received', 'greeting', undefined, message);
      this.greetingSlot.resolve(message);
      return true;
    }
    if (typeof message.event !== 'string') return false;
    const event: QmpEvent = { event: message.event, data: message.data, timestamp: parseTimestamp(message.timestamp) };
    this.record('received', 'event', event.event, message);
    this.log?.debug({ event: event.event }, 'QMP event');
    for (const listener of [...this.eventListeners]) {
      try {
        listener(event);
      } catch (error) {
        // A listener's bug must not stop the reader, or every pending command would hang.
        this.log?.warn({ event: event.event, err: error }, 'QMP event listener threw; ignored');
      }
    }
    return true;
  }
}

function parseGreeting(context: ErrorContext, message: JsonObject): Greeting {
  const qmp = message.QMP;
  const version = isJsonObject(qmp) ? qmp.version : undefined;
  const qemu = isJsonObject(version) ? version.qemu : undefined;
  const capabilities = isJsonObject(qmp) ? qmp.capabilities : undefined;
  if (
    !isJsonObject(version) ||
    !isJsonObject(qemu) ||
    typeof qemu.major !== 'number' ||
    typeof qemu.minor !== 'number' ||
    typeof qemu.micro !== 'number' ||
    !Array.isArray(capabilities)
  ) {
    throw new QmpGreetingError(context, redactedJson(message, 200));
  }
  return {
    version: {
      major: qemu.major,
      minor: qemu.minor,
      micro: qemu.micro,
      package: typeof version.package === 'string' ? version.package : '',
    },
    capabilities: capabilities.filter((capability): capability is string => typeof capability === 'string'),
  };
}

function parseTimestamp(timestamp: unknown): { seconds: number; microseconds: number } {
  if (!isJsonObject(timestamp)) return { seconds: 0, microseconds: 0 };
  return {
    seconds: typeof timestamp.seconds === 'number' ? timestamp.seconds : 0,
    microseconds: typeof timestamp.microseconds === 'number' ? timestamp.microseconds : 0,
  };
}
