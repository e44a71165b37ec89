import type { Socket } from 'node:net';
import { boundedWait, type Settle, type Waiter } from './bounded-wait.js';
import { channelName, type Channel } from './channel.js';
import { CHANNEL_ERRORS, type ErrorContext, type ProtocolDisconnectedError, type ProtocolTimeoutError } from './errors.js';
import { ExchangeRing, type Exchange } from './exchange-ring.js';
import { JsonStreamDecoder, encodeMessage, isJsonObject, type Frame, type JsonObject } from './framing.js';

/**
 * One JSON-lines connection: what QMP and the guest agent share, as QEMU's python/qemu/qmp has
 * one generic protocol class under both clients. It owns the socket wiring, an explicit state,
 * the requests waiting for replies, the last exchanges, and how all of it ends when either side
 * closes. QmpClient (greeting, capabilities, events) and QgaClient (sync, one request at a time)
 * extend it with their protocol.
 *
 *   connecting ──markOpen()──▶ open ──close()──▶ closing ──socket gone──▶ closed
 *   connecting ──close()──▶ closing                 QEMU hangs up (connecting, open) ──▶ closed
 */

/** Where a connection is: handshake under way, ready, being closed by warmvm, or gone. */
export type ConnectionState = 'connecting' | 'open' | 'closing' | 'closed';

/** The part of a pino logger the clients use; pass `logger.child({ module })`. */
export interface ClientLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** One request to send, and how to tell its reply from the rest of the stream. */
export interface Request {
  command: string;
  /** The whole message as sent (QMP's carries its id). */
  message: JsonObject;
  /** What a timeout or disconnect names: `command "stop"`, `"guest-ping"`. */
  operation: string;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  /** Whether a reply answers this request: QMP compares ids; the agent has none (but its sync does). */
  matches(reply: JsonObject): boolean;
  /** Bytes written right before the line (the 0xFF before the agent's sync). */
  prefix?: Buffer;
  /** Runs when the caller gives up (timeout, abort): the reply may still come. */
  onGiveUp?: () => void;
}

/** A wait that is not a request (QMP's greeting, an event): its bound and its advice on timeout. */
export interface WaitOptions {
  operation: string;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  /** What a timeout tells a person to do, when the channel's usual advice does not fit. */
  hint?: string;
  onGiveUp?: () => void;
}

type CloseListener = (error: ProtocolDisconnectedError) => void;

/** The base of QmpClient and QgaClient: one JSON-lines connection over a connected unix socket. */
export abstract class JsonLinesConnection {
  private readonly decoder = new JsonStreamDecoder();
  private readonly exchanges = new ExchangeRing(20);
  private readonly pending = new Set<{ request: Request; settle: Settle<unknown> }>();
  private readonly waiters = new Set<Waiter>();
  private readonly closeListeners = new Set<CloseListener>();
  private current: ConnectionState = 'connecting';
  /** Once closed: true when QEMU hung up, false when warmvm closed it. */
  private closedByPeer = true;
  private lastSocketError: Error | undefined;
  private closing: Promise<void> | undefined;

  protected constructor(
    readonly channel: Channel,
    readonly socketPath: string,
    private readonly socket: Socket,
    protected readonly log: ClientLogger | undefined,
  ) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.decoder.push(chunk)) this.dispatch(frame);
    });
    // 'close' always follows 'error'; keep the error as the disconnect's cause.
    socket.on('error', (error) => {
      this.lastSocketError = error;
    });
    socket.on('close', () => {
      if (this.current === 'closing') this.current = 'closed';
      else this.markClosed(true);
    });
  }

  /** Where the connection is now (see the diagram above). */
  get state(): ConnectionState {
    return this.current;
  }

  /** True once either side has closed it (closing or closed): every call now fails at once. */
  get closed(): boolean {
    return this.current === 'closing' || this.current === 'closed';
  }

  /** Called once when the connection ends, with why; at once (next tick) if it already has. */
  onClose(listener: CloseListener): () => void {
    if (this.closed) {
      const error = this.disconnected(undefined);
      queueMicrotask(() => listener(error));
      return () => {};
    }
    this.closeListeners.add(listener);
    return () => {
      this.closeListeners.delete(listener);
    };
  }

  /** The last 20 messages sent and received, oldest first, secrets redacted (`input-data` reads "[redacted]"). */
  recentExchanges(): Exchange[] {
    return this.exchanges.list();
  }

  /** Each message from now on, secrets redacted, as it is sent or received. */
  observeExchanges(listener: (exchange: Exchange) => void): () => void {
    return this.exchanges.subscribe(listener);
  }

  /** Closes the connection; every pending and queued call rejects as disconnected by warmvm. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      const gone = this.current === 'closed';
      this.markClosed(false);
      this.closing = gone
        ? Promise.resolve()
        : new Promise((resolve) => {
            this.socket.once('close', () => resolve());
            this.socket.destroy();
          });
    }
    return this.closing;
  }

  /** The handshake is done: the connection is open for its callers. */
  protected markOpen(): void {
    if (this.current === 'connecting') this.current = 'open';
  }

  /** Takes a message before it is matched to a request (QMP's greeting and events); true when taken. */
  protected takeMessage(_message: JsonObject): boolean {
    return false;
  }

  /** Keeps a message the connection does not record itself (the greeting, events) in the exchange ring. */
  protected record(direction: Exchange['direction'], kind: Exchange['kind'], name: string | undefined, message: unknown): void {
    this.exchanges.record(direction, kind, name, message);
  }

  /** Drops what arrives until the agent's next 0xFF (see JsonStreamDecoder.resync). */
  protected resync(): void {
    this.decoder.resync();
  }

  /** Where an error on this connection happened, with the last exchanges. */
  protected errorContext(): ErrorContext {
    return { socketPath: this.socketPath, exchanges: this.exchanges.list() };
  }

  /** The channel's timeout error for `operation`. */
  protected timeoutError(operation: string, timeoutMs: number, hint?: string, cause?: unknown): ProtocolTimeoutError {
    return new CHANNEL_ERRORS[this.channel].Timeout({ ...this.errorContext(), operation, timeoutMs, hint, cause });
  }

  /** The channel's disconnected error for `operation` (undefined: for onClose listeners). */
  protected disconnected(operation: string | undefined): ProtocolDisconnectedError {
    const byPeer = this.closedByPeer;
    return new CHANNEL_ERRORS[this.channel].Disconnected({ ...this.errorContext(), operation, byPeer, cause: this.lastSocketError });
  }

  /** Waits for what `start` sets up, bounded by time and signal; fails at once once closed. */
  protected wait<T>(options: WaitOptions, start: (settle: Settle<T>) => () => void): Promise<T> {
    const { operation, timeoutMs, signal, hint, onGiveUp } = options;
    const timeoutError = (): Error => this.timeoutError(operation, timeoutMs, hint);
    return boundedWait<T>({ operation, timeoutMs, signal, onGiveUp, waiters: this.waiters, timeoutError }, (settle) => {
      if (this.closed) {
        settle.reject(this.disconnected(operation));
        return () => {};
      }
      return start(settle);
    });
  }

  /** Sends one request; resolves with the `return` of the reply it matches, rejects on an `error` reply. */
  protected send<T>(request: Request): Promise<T> {
    return this.wait<T>(request, (settle) => {
      // A late reply after a timeout or abort finds no entry and is dropped.
      const entry = { request, settle: settle as Settle<unknown> };
      this.pending.add(entry);
      this.record('sent', 'command', request.command, request.message);
      this.log?.debug({ command: request.command, id: request.message.id }, `${channelName(this.channel)} command sent`);
      const line = encodeMessage(request.message);
      this.socket.write(request.prefix ? Buffer.concat([request.prefix, Buffer.from(line)]) : line);
      return () => {
        this.pending.delete(entry);
      };
    });
  }

  private dispatch(frame: Frame): void {
    const name = channelName(this.channel);
    if (frame.kind === 'malformed') {
      this.record('received', 'malformed', undefined, frame.text);
      this.log?.warn({ reason: frame.reason }, `${name} sent a line that is not a JSON object; ignored`);
      return;
    }
    const message = frame.value;
    if (this.takeMessage(message)) return;
    const isError = 'error' in message;
    const entry = isError || 'return' in message ? [...this.pending].find(({ request }) => request.matches(message)) : undefined;
    if (!entry) {
      // A reply to a request given up on (timeout, abort), to an older sync, or to input QEMU
      // could not parse (it answers without an id): nothing waits for it, but it is worth seeing.
      this.record('received', 'unmatched', undefined, message);
      this.log?.debug({ id: message.id }, `${name} reply matches no pending request; dropped`);
      return;
    }
    const { command } = entry.request;
    if (!isError) {
      this.record('received', 'return', command, message);
      entry.settle.resolve(message.return);
      return;
    }
    this.record('received', 'error', command, message);
    const error = isJsonObject(message.error) ? message.error : {};
    const errorClass = typeof error.class === 'string' ? error.class : 'GenericError';
    const desc = typeof error.desc === 'string' ? error.desc : JSON.stringify(message.error);
    const args = isJsonObject(entry.request.message.arguments) ? entry.request.message.arguments : undefined;
    entry.settle.reject(new CHANNEL_ERRORS[this.channel].Execute({ ...this.errorContext(), command, errorClass, desc, args }));
  }

  private markClosed(byPeer: boolean): void {
    if (this.closed) return;
    this.current = byPeer ? 'closed' : 'closing';
    this.closedByPeer = byPeer;
    const name = channelName(this.channel);
    for (const waiter of [...this.waiters]) waiter.fail(this.disconnected(waiter.operation));
    this.pending.clear();
    if (byPeer) this.log?.info({ socketPath: this.socketPath, err: this.lastSocketError }, `${name} connection closed by QEMU`);
    const error = this.disconnected(undefined);
    for (const listener of [...this.closeListeners]) {
      try {
        listener(error);
      } catch (listenerError) {
        this.log?.warn({ err: listenerError }, `${name} close listener threw; ignored`);
      }
    }
    this.closeListeners.clear();
    // QEMU has gone; make sure the file descriptor goes too (a no-op once the socket closed).
    if (byPeer) this.socket.destroy();
  }
}
