import type { Socket } from 'node:net';
import { WarmvmError, abortError, throwIfAborted } from '../../support/errors.js';
import {
  ExchangeRing,
  JsonStreamDecoder,
  boundedWait,
  connectUnixSocket,
  encodeMessage,
  isJsonObject,
  isNotListeningYet,
  type ClientLogger,
  type Exchange,
  type Frame,
  type JsonObject,
  type Settle,
  type Waiter,
} from './json-lines.js';
import { sleep } from '../../support/sleep.js';

/**
 * A client for QEMU's machine protocol (QMP) on a unix socket, shaped after QEMU's own Python
 * `qemu.qmp`: an explicit handshake, a unique id per command with one pending slot per id,
 * events delivered to listeners without ever touching pending commands, and a few error classes
 * that keep what was sent and received.
 */

export type { ClientLogger, Exchange } from './json-lines.js';

export interface QmpVersion {
  major: number;
  minor: number;
  micro: number;
  /** The distribution's build string, e.g. "Debian 1:10.0.2+ds-1~bpo12+1"; may be empty. */
  package: string;
}

export interface QmpEvent {
  event: string;
  /** Absent for events without data (STOP, RESUME): then undefined. */
  data: unknown;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpConnectOptions {
  /** Bound for the whole handshake: connect, greeting, capabilities. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  logger?: ClientLogger;
}

export interface QmpConnectWhenReadyOptions {
  /** How long to keep trying, in ms from the call (a duration, not a point in time). */
  deadlineMs: number;
  signal?: AbortSignal;
  logger?: ClientLogger;
  /** Pause between attempts while the socket is missing or refuses. Default 20 ms. */
  retryIntervalMs?: number;
}

export interface QmpExecuteOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface QmpWaitForEventOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  predicate?: (event: QmpEvent) => boolean;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_EXECUTE_TIMEOUT_MS = 10_000;
const DEFAULT_RETRY_INTERVAL_MS = 20;

// ---------------------------------------------------------------------------------------------
// Errors

/** The socket could not be reached at all (missing, refused, or still missing at the deadline). */
export class QmpConnectError extends WarmvmError {
  constructor(
    readonly socketPath: string,
    message: string,
    cause: unknown,
  ) {
    super('E_QMP_CONNECT', message, {
      hint: 'check that QEMU is running and was started with -qmp unix:<this path>,server=on,wait=off; its log says why it stopped',
      cause,
    });
  }
}

/** The first message was not a QMP greeting: not QEMU, or a QEMU too old or too new to understand. */
export class QmpGreetingError extends WarmvmError {
  constructor(
    readonly socketPath: string,
    readonly received: string,
  ) {
    super('E_QMP_GREETING', `the QMP socket ${socketPath} did not greet like QEMU (received ${received})`, {
      hint: 'check that the path is a QEMU -qmp socket (not a monitor, serial or guest agent socket)',
    });
  }
}

/** QEMU answered `qmp_capabilities` with an error. */
export class QmpNegotiationError extends WarmvmError {
  constructor(
    readonly socketPath: string,
    cause: QmpExecuteError,
  ) {
    super('E_QMP_NEGOTIATION', `QEMU refused QMP capabilities negotiation on ${socketPath}: ${cause.desc}`, {
      hint: 'another client may have negotiated on this connection already; report it with the QEMU version',
      cause,
    });
  }
}

/** QEMU answered a command with `{"error": …}`. */
export class QmpExecuteError extends WarmvmError {
  constructor(
    readonly command: string,
    readonly args: Record<string, unknown> | undefined,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super('E_QMP_EXECUTE', `QMP command "${command}" failed: ${desc} (${errorClass})`, {
      hint: hintForErrorClass(errorClass),
    });
  }
}

function hintForErrorClass(errorClass: string): string {
  if (errorClass === 'CommandNotFound') return 'this QEMU does not have the command: check `qemu-system-x86_64 --version` against what warmvm needs';
  if (errorClass === 'DeviceNotFound') return 'the device id does not exist on this VM: compare with the QEMU command line';
  return 'the reply above is QEMU’s own reason; the last QMP exchanges are in the trace and the inspector';
}

/** The connection closed while something was waiting on it. */
export class QmpDisconnectedError extends WarmvmError {
  constructor(
    readonly socketPath: string,
    /** What was waiting on the connection; undefined for onClose listeners. */
    readonly operation: string | undefined,
    /** True when QEMU (or whatever held the other end) hung up, false when this side closed. */
    readonly byPeer: boolean,
    cause?: unknown,
  ) {
    const during = operation === undefined ? '' : ` during ${operation}`;
    super(
      'E_QMP_DISCONNECTED',
      byPeer ? `QEMU closed the QMP connection ${socketPath}${during}` : `the QMP connection ${socketPath} was closed by warmvm${during}`,
      {
        hint: byPeer ? 'QEMU probably exited or crashed: read its log in the instance folder' : 'nothing to fix: the caller closed it on purpose',
        cause,
      },
    );
  }
}

export class QmpTimeoutError extends WarmvmError {
  constructor(
    readonly socketPath: string,
    readonly operation: string,
    readonly timeoutMs: number,
    hint = 'QEMU may be hung or busy: read its log; run with --inspect to see the last QMP exchanges',
  ) {
    super('E_QMP_TIMEOUT', `no answer on QMP socket ${socketPath} for ${operation} within ${timeoutMs} ms`, { hint });
  }
}

// ---------------------------------------------------------------------------------------------

interface PendingCommand {
  command: string;
  args: Record<string, unknown> | undefined;
  settle: Settle<unknown>;
}

type CloseListener = (error: QmpDisconnectedError) => void;
type EventListener = (event: QmpEvent) => void;

export class QmpClient {
  private readonly decoder = new JsonStreamDecoder();
  private readonly exchanges = new ExchangeRing(20);
  private readonly pending = new Map<string, PendingCommand>();
  private readonly waiters = new Set<Waiter>();
  private readonly eventListeners = new Set<EventListener>();
  private readonly closeListeners = new Set<CloseListener>();
  private greetingSlot: Settle<JsonObject> | undefined;
  private greeted: { version: QmpVersion; capabilities: string[] } | undefined;
  private nextId = 0;
  private lastSocketError: Error | undefined;
  private closedBy: { byPeer: boolean } | undefined;
  private socketClosed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly socketPath: string,
    private readonly socket: Socket,
    private readonly log: ClientLogger | undefined,
  ) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.decoder.push(chunk)) this.dispatch(frame);
    });
    // 'close' always follows 'error'; keep the error as the disconnect's cause.
    socket.on('error', (error) => {
      this.lastSocketError = error;
    });
    socket.on('close', () => {
      this.socketClosed = true;
      this.markClosed(true);
    });
  }

  /** Connects, reads the greeting and negotiates capabilities; the client is ready for commands. */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let socket: Socket;
    try {
      socket = await connectUnixSocket(socketPath, opts.signal, `connecting to QMP socket ${socketPath}`);
    } catch (error) {
      if (error instanceof WarmvmError) throw error;
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new QmpConnectError(socketPath, `cannot connect to QMP socket ${socketPath} (${code})`, error);
    }
    const client = new QmpClient(socketPath, socket, opts.logger);
    try {
      await client.handshake(deadline, opts.signal);
      return client;
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /**
   * Connects as soon as QEMU has created and opened its socket: retries while the socket is
   * missing or refuses, every ~20 ms, for `deadlineMs`. Any other failure (a bad greeting, a
   * refused negotiation) is final and thrown at once.
   */
  static async connectWhenReady(socketPath: string, opts: QmpConnectWhenReadyOptions): Promise<QmpClient> {
    const started = Date.now();
    const deadline = started + opts.deadlineMs;
    const what = `waiting for QMP socket ${socketPath}`;
    let lastError: unknown;
    for (let attempt = 1; ; attempt += 1) {
      throwIfAborted(opts.signal, what);
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const reason = lastError instanceof QmpConnectError ? ((lastError.cause as NodeJS.ErrnoException | undefined)?.code ?? 'no answer') : 'no answer';
        throw new QmpConnectError(
          socketPath,
          `QMP socket ${socketPath} was not ready within ${opts.deadlineMs} ms (${attempt - 1} attempts, last: ${reason})`,
          lastError,
        );
      }
      try {
        return await QmpClient.connect(socketPath, { timeoutMs: remaining, signal: opts.signal, logger: opts.logger });
      } catch (error) {
        if (!(error instanceof QmpConnectError && isNotListeningYet(error.cause))) throw error;
        lastError = error;
      }
      try {
        await sleep(Math.min(opts.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS, Math.max(0, deadline - Date.now())), opts.signal);
      } catch {
        throw abortError(opts.signal, what);
      }
    }
  }

  /** QEMU's version, from the greeting. */
  get version(): QmpVersion {
    return { ...this.handshakeResult().version };
  }

  /** Capabilities QEMU offered in its greeting (e.g. "oob"); none is enabled by this client. */
  get capabilities(): readonly string[] {
    return [...this.handshakeResult().capabilities];
  }

  get closed(): boolean {
    return this.closedBy !== undefined;
  }

  /**
   * Runs one command and resolves with its `return` value. `T` is what the caller expects QEMU
   * to return; it is not checked.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXECUTE_TIMEOUT_MS;
    return this.send<T>(command, args, timeoutMs, opts.signal);
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
    const operation = `waiting for event ${name}`;
    return boundedWait<QmpEvent>(
      {
        operation,
        timeoutMs: opts.timeoutMs,
        signal: opts.signal,
        waiters: this.waiters,
        timeoutError: () => new QmpTimeoutError(this.socketPath, operation, opts.timeoutMs, `QEMU did not emit ${name}: see the last QMP exchanges for what it did emit`),
      },
      (settle) => {
        if (this.closedBy) {
          settle.reject(this.disconnected(operation));
          return () => {};
        }
        return this.onEvent((event) => {
          if (event.event !== name) return;
          try {
            if (opts.predicate && !opts.predicate(event)) return;
          } catch (error) {
            settle.reject(error instanceof Error ? error : new Error(String(error)));
            return;
          }
          settle.resolve(event);
        });
      },
    );
  }

  /** Called once when the connection ends, with why; at once (next tick) if it already has. */
  onClose(listener: (error: QmpDisconnectedError) => void): () => void {
    if (this.closedBy) {
      const error = this.disconnected(undefined);
      queueMicrotask(() => listener(error));
      return () => {};
    }
    this.closeListeners.add(listener);
    return () => {
      this.closeListeners.delete(listener);
    };
  }

  /** The last 20 messages sent and received, oldest first, for debugging. */
  recentExchanges(): Exchange[] {
    return this.exchanges.list();
  }

  /** Each message from now on, secrets redacted, as it is sent or received. */
  observeExchanges(listener: (exchange: Exchange) => void): () => void {
    return this.exchanges.subscribe(listener);
  }

  /** Closes the connection; every pending call rejects with QmpDisconnectedError. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.markClosed(false);
      this.closing = this.socketClosed
        ? Promise.resolve()
        : new Promise((resolve) => {
            this.socket.once('close', () => resolve());
            this.socket.destroy();
          });
    }
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------

  private async handshake(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    const greetingTimeoutMs = deadline - Date.now();
    const greeting = await boundedWait<JsonObject>(
      {
        operation: 'the greeting',
        timeoutMs: greetingTimeoutMs,
        signal,
        waiters: this.waiters,
        timeoutError: () =>
          new QmpTimeoutError(
            this.socketPath,
            'the greeting',
            greetingTimeoutMs,
            'QEMU serves one QMP client at a time on a socket: another client may be connected; otherwise QEMU is hung',
          ),
      },
      (settle) => {
        this.greetingSlot = settle;
        return () => {
          this.greetingSlot = undefined;
        };
      },
    );
    this.greeted = parseGreeting(this.socketPath, greeting);
    try {
      await this.send('qmp_capabilities', undefined, deadline - Date.now(), signal);
    } catch (error) {
      throw error instanceof QmpExecuteError ? new QmpNegotiationError(this.socketPath, error) : error;
    }
    this.log?.debug({ socketPath: this.socketPath, version: this.greeted.version }, 'QMP connected');
  }

  private handshakeResult(): { version: QmpVersion; capabilities: string[] } {
    // connect() returns only after the handshake, so this holds for every client a caller has.
    if (!this.greeted) throw new WarmvmError('E_QMP_STATE', 'QMP client used before its handshake finished');
    return this.greeted;
  }

  private send<T>(command: string, args: Record<string, unknown> | undefined, timeoutMs: number, signal: AbortSignal | undefined): Promise<T> {
    const operation = `command "${command}"`;
    return boundedWait<T>(
      {
        operation,
        timeoutMs,
        signal,
        waiters: this.waiters,
        timeoutError: () => new QmpTimeoutError(this.socketPath, operation, timeoutMs),
      },
      (settle) => {
        if (this.closedBy) {
          settle.reject(this.disconnected(operation));
          return () => {};
        }
        this.nextId += 1;
        const id = `warmvm-${this.nextId}`;
        const message: JsonObject = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
        // A late reply after a timeout or abort finds no slot and is dropped: ids keep the stream in step.
        this.pending.set(id, { command, args, settle: settle as Settle<unknown> });
        this.exchanges.record('sent', 'command', command, message);
        this.log?.debug({ command, id }, 'QMP command sent');
        this.socket.write(encodeMessage(message));
        return () => {
          this.pending.delete(id);
        };
      },
    );
  }

  private dispatch(frame: Frame): void {
    if (frame.kind === 'malformed') {
      this.exchanges.record('received', 'malformed', undefined, frame.text);
      this.log?.warn({ text: frame.text, reason: frame.reason }, 'QMP sent a line that is not a JSON object; ignored');
      return;
    }
    const message = frame.value;
    if (!this.greeted && this.greetingSlot) {
      this.exchanges.record('received', 'greeting', undefined, message);
      this.greetingSlot.resolve(message);
      return;
    }
    if (typeof message.event === 'string') {
      this.deliverEvent(message);
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const slot = id === undefined ? undefined : this.pending.get(id);
    const isError = 'error' in message;
    if (!slot || (!isError && !('return' in message))) {
      // An id we gave up on (timeout, abort), or no id at all: QEMU answers input it could not
      // parse without one. Nothing waits for it, but it is worth seeing when debugging.
      this.exchanges.record('received', 'unmatched', undefined, message);
      this.log?.debug({ id }, 'QMP reply matches no pending command; dropped');
      return;
    }
    if (isError) {
      const { errorClass, desc } = parseError(message.error);
      this.exchanges.record('received', 'error', slot.command, message);
      slot.settle.reject(new QmpExecuteError(slot.command, slot.args, errorClass, desc));
    } else {
      this.exchanges.record('received', 'return', slot.command, message);
      slot.settle.resolve(message.return);
    }
  }

  private deliverEvent(message: JsonObject): void {
    const event: QmpEvent = {
      event: String(message.event),
      data: message.data,
      timestamp: parseTimestamp(message.timestamp),
    };
    this.exchanges.record('received', 'event', event.event, message);
    this.log?.debug({ event: event.event }, 'QMP event');
    for (const listener of [...this.eventListeners]) {
      try {
        listener(event);
      } catch (error) {
        // A listener's bug must not stop the reader, or every pending command would hang.
        this.log?.warn({ event: event.event, err: error }, 'QMP event listener threw; ignored');
      }
    }
  }

  private markClosed(byPeer: boolean): void {
    if (this.closedBy) return;
    this.closedBy = { byPeer };
    for (const waiter of [...this.waiters]) waiter.fail(this.disconnected(waiter.operation));
    this.pending.clear();
    if (byPeer) this.log?.info({ socketPath: this.socketPath, err: this.lastSocketError }, 'QMP connection closed by QEMU');
    const error = this.disconnected(undefined);
    for (const listener of [...this.closeListeners]) {
      try {
        listener(error);
      } catch (listenerError) {
        this.log?.warn({ err: listenerError }, 'QMP close listener threw; ignored');
      }
    }
    this.closeListeners.clear();
    // QEMU has gone; make sure the file descriptor goes too (a no-op once the socket closed).
    if (byPeer) this.socket.destroy();
  }

  private disconnected(operation: string | undefined): QmpDisconnectedError {
    return new QmpDisconnectedError(this.socketPath, operation, this.closedBy?.byPeer ?? true, this.lastSocketError);
  }
}

function parseGreeting(socketPath: string, message: JsonObject): { version: QmpVersion; capabilities: string[] } {
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
    throw new QmpGreetingError(socketPath, JSON.stringify(message).slice(0, 200));
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

function parseError(error: unknown): { errorClass: string; desc: string } {
  if (!isJsonObject(error)) return { errorClass: 'GenericError', desc: JSON.stringify(error) };
  return {
    errorClass: typeof error.class === 'string' ? error.class : 'GenericError',
    desc: typeof error.desc === 'string' ? error.desc : JSON.stringify(error),
  };
}

function parseTimestamp(timestamp: unknown): { seconds: number; microseconds: number } {
  if (!isJsonObject(timestamp)) return { seconds: 0, microseconds: 0 };
  return {
    seconds: typeof timestamp.seconds === 'number' ? timestamp.seconds : 0,
    microseconds: typeof timestamp.microseconds === 'number' ? timestamp.microseconds : 0,
  };
}
