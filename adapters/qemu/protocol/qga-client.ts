import { randomInt } from 'node:crypto';
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
 * A client for the QEMU guest agent (qemu-ga) through the host side of its chardev socket.
 *
 * The agent speaks QMP's framing without a greeting or capabilities, answers one request at a
 * time, and puts no id in its replies: a reply belongs to the oldest request, so requests go
 * through a queue one by one. A reply that arrives after its caller gave up would be taken for
 * the next request's, so after any timeout or abort the next request first re-synchronises with
 * `guest-sync-delimited` (random id, 0xFF sentinel), which drops everything stale.
 *
 * The host side of the socket accepts connections even when no agent runs in the guest: an
 * unanswered request is the only sign of that. `connectWhenReady` retries the sync until the
 * agent answers.
 */

export type { ClientLogger, Exchange } from './json-lines.js';

export interface QgaConnectOptions {
  /** Bound for connecting and the first sync. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  logger?: ClientLogger;
}

export interface QgaConnectWhenReadyOptions {
  /** How long to keep trying, in ms from the call (a duration, not a point in time). */
  deadlineMs: number;
  signal?: AbortSignal;
  logger?: ClientLogger;
  /** How long one sync waits for an answer before sending another. Default 1 s. */
  attemptTimeoutMs?: number;
  /** Pause between connection attempts while the socket is missing or refuses. Default 20 ms. */
  retryIntervalMs?: number;
}

export interface QgaRequestOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface QgaExecOptions {
  /** Written to the command's stdin. May carry secrets: never logged, kept, or put in an error. */
  inputData?: string | Buffer;
  /** `NAME=value` entries for the command's environment. */
  env?: string[];
  /** Bound for the whole run, from start to exit. Default 60 s. */
  timeoutMs?: number;
  /** Longest pause between status polls; polling starts at 10 ms and doubles up to this. Default 100 ms. */
  pollIntervalMs?: number;
  signal?: AbortSignal;
}

export interface QgaExecResult {
  /** Set when the command exited normally. */
  exitCode: number | undefined;
  /** Set when a signal killed the command. */
  signal: number | undefined;
  stdout: Buffer;
  stderr: Buffer;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 1_000;
const DEFAULT_RETRY_INTERVAL_MS = 20;
const FIRST_POLL_INTERVAL_MS = 10;
const DEFAULT_MAX_POLL_INTERVAL_MS = 100;
/** The 0xFF the agent's parser takes as "drop whatever partial input you hold". */
const SENTINEL = Buffer.from([0xff]);

// ---------------------------------------------------------------------------------------------
// Errors. None of them ever holds a request's arguments: guest-exec's input-data carries secrets.

export class QgaConnectError extends WarmvmError {
  constructor(
    readonly socketPath: string,
    message: string,
    cause: unknown,
  ) {
    super('E_QGA_CONNECT', message, {
      hint: 'check that QEMU is running with -chardev socket,path=<this path>,server=on,wait=off and a virtserialport named org.qemu.guest_agent.0',
      cause,
    });
  }
}

export class QgaTimeoutError extends WarmvmError {
  constructor(
    readonly socketPath: string,
    readonly operation: string,
    readonly timeoutMs: number,
    hint = 'the guest may be hung or very busy; the next request re-synchronises with the agent first',
    cause?: unknown,
  ) {
    super('E_QGA_TIMEOUT', `the guest agent on ${socketPath} did not finish ${operation} within ${timeoutMs} ms`, { hint, cause });
  }
}

/** The agent answered with `{"error": …}`. */
export class QgaExecuteError extends WarmvmError {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super('E_QGA_EXECUTE', `guest agent command "${command}" failed: ${desc} (${errorClass})`, {
      hint:
        errorClass === 'CommandNotFound' || /disabled/i.test(desc)
          ? 'the guest agent does not allow this command: check its version and its --allow-rpcs / --block-rpcs settings in the guest image'
          : 'the reason above comes from the guest; the guest agent logs more in the guest (journalctl -u qemu-guest-agent)',
    });
  }
}

export class QgaDisconnectedError extends WarmvmError {
  constructor(
    readonly socketPath: string,
    /** What was waiting on the connection; undefined for onClose listeners. */
    readonly operation: string | undefined,
    /** True when QEMU hung up, false when this side closed. */
    readonly byPeer: boolean,
    cause?: unknown,
  ) {
    const during = operation === undefined ? '' : ` during ${operation}`;
    super(
      'E_QGA_DISCONNECTED',
      byPeer
        ? `QEMU closed the guest agent socket ${socketPath}${during}`
        : `the guest agent connection ${socketPath} was closed by warmvm${during}`,
      {
        hint: byPeer ? 'QEMU probably exited or crashed: read its log in the instance folder' : 'nothing to fix: the caller closed it on purpose',
        cause,
      },
    );
  }
}

// ---------------------------------------------------------------------------------------------

interface PendingRequest {
  command: string;
  /** Decides whether a reply is this request's; replies it refuses are stale and dropped. */
  accept: ((message: JsonObject) => boolean) | undefined;
  settle: Settle<unknown>;
}

type Args = Record<string, unknown> | undefined;

export class QgaClient {
  private readonly decoder = new JsonStreamDecoder();
  private readonly exchanges = new ExchangeRing(20);
  private readonly waiters = new Set<Waiter>();
  private readonly closeListeners = new Set<(error: QgaDisconnectedError) => void>();
  private pending: PendingRequest | undefined;
  /** Settles when the last queued request has; each request starts after the one before. */
  private queueTail: Promise<void> = Promise.resolve();
  /** Set when a request was given up on: its reply may still come and must not be taken for another's. */
  private needsSync = true;
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
    socket.on('error', (error) => {
      this.lastSocketError = error;
    });
    socket.on('close', () => {
      this.socketClosed = true;
      this.markClosed(true);
    });
  }

  /** Connects and synchronises with the agent; fails with QgaTimeoutError if no agent answers. */
  static async connect(socketPath: string, opts: QgaConnectOptions = {}): Promise<QgaClient> {
    const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    const client = await QgaClient.open(socketPath, opts.signal, opts.logger);
    try {
      await client.sync({ timeoutMs: Math.max(1, deadline - Date.now()), signal: opts.signal });
      return client;
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /**
   * Connects and syncs as soon as the agent in the guest answers: while the socket is missing or
   * refuses, retries every ~20 ms; once connected, sends a fresh sync every `attemptTimeoutMs`
   * until one is answered, reconnecting if QEMU hangs up. Gives up after `deadlineMs`.
   */
  static async connectWhenReady(socketPath: string, opts: QgaConnectWhenReadyOptions): Promise<QgaClient> {
    const deadline = Date.now() + opts.deadlineMs;
    const attemptTimeoutMs = opts.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    const retryIntervalMs = opts.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS;
    const what = `waiting for the guest agent on ${socketPath}`;
    const pause = async (): Promise<void> => {
      try {
        await sleep(Math.min(retryIntervalMs, Math.max(0, deadline - Date.now())), opts.signal);
      } catch {
        throw abortError(opts.signal, what);
      }
    };
    let client: QgaClient | undefined;
    let lastError: unknown;
    let syncs = 0;
    try {
      for (;;) {
        throwIfAborted(opts.signal, what);
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          if (syncs === 0) {
            const errno = lastError instanceof QgaConnectError ? (lastError.cause as NodeJS.ErrnoException | undefined)?.code : undefined;
            throw new QgaConnectError(socketPath, `guest agent socket ${socketPath} was not ready within ${opts.deadlineMs} ms (last: ${errno ?? 'no answer'})`, lastError);
          }
          throw new QgaTimeoutError(
            socketPath,
            `guest-sync-delimited (${syncs} attempts)`,
            opts.deadlineMs,
            'the socket is up but no agent answered: is qemu-guest-agent installed and started in the guest, on a virtserialport named org.qemu.guest_agent.0?',
            lastError,
          );
        }
        if (!client || client.closed) {
          try {
            client = await QgaClient.open(socketPath, opts.signal, opts.logger);
          } catch (error) {
            if (!(error instanceof QgaConnectError && isNotListeningYet(error.cause))) throw error;
            lastError = error;
            await pause();
            continue;
          }
        }
        syncs += 1;
        try {
          await client.sync({ timeoutMs: Math.min(attemptTimeoutMs, remaining), signal: opts.signal });
          const ready = client;
          client = undefined;
          return ready;
        } catch (error) {
          if (error instanceof QgaTimeoutError) {
            lastError = error;
          } else if (error instanceof QgaDisconnectedError) {
            lastError = error;
            await pause();
          } else {
            throw error;
          }
        }
      }
    } finally {
      await client?.close();
    }
  }

  /** Connects without syncing (the caller syncs). */
  private static async open(socketPath: string, signal: AbortSignal | undefined, logger: ClientLogger | undefined): Promise<QgaClient> {
    try {
      const socket = await connectUnixSocket(socketPath, signal, `connecting to the guest agent socket ${socketPath}`);
      return new QgaClient(socketPath, socket, logger);
    } catch (error) {
      if (error instanceof WarmvmError) throw error;
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new QgaConnectError(socketPath, `cannot connect to the guest agent socket ${socketPath} (${code})`, error);
    }
  }

  get closed(): boolean {
    return this.closedBy !== undefined;
  }

  /**
   * `guest-sync-delimited` with a random id: everything the agent sent before its 0xFF sentinel,
   * and any reply with another id, is stale and dropped.
   */
  sync(opts: QgaRequestOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    return this.enqueue('guest-sync-delimited', opts.signal, () => this.syncNow(timeoutMs, opts.signal));
  }

  async ping(opts: QgaRequestOptions = {}): Promise<void> {
    await this.execute('guest-ping', undefined, opts);
  }

  /** Runs any agent command and resolves with its `return` value (`T` is not checked). */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QgaRequestOptions = {}): Promise<T> {
    return this.request<T>(command, () => args, opts);
  }

  /**
   * Runs a program in the guest and waits for it to exit: `guest-exec` with captured output, then
   * `guest-exec-status` polls. A non-zero exit is a result, not an error.
   */
  async exec(path: string, args: string[], opts: QgaExecOptions = {}): Promise<QgaExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const maxPollMs = opts.pollIntervalMs ?? DEFAULT_MAX_POLL_INTERVAL_MS;
    const deadline = Date.now() + timeoutMs;
    const remaining = (): number => Math.max(1, deadline - Date.now());
    const operation = `guest-exec of ${path}`;
    const execArgs: Record<string, unknown> = { path, arg: args, 'capture-output': true };
    if (opts.env) execArgs.env = opts.env;
    if (opts.inputData !== undefined) execArgs['input-data'] = Buffer.from(opts.inputData).toString('base64');

    const started = await this.request<unknown>('guest-exec', () => execArgs, { timeoutMs: remaining(), signal: opts.signal });
    if (!isJsonObject(started) || typeof started.pid !== 'number') {
      throw new QgaExecuteError('guest-exec', 'InvalidReply', `expected {"pid": number}, received ${JSON.stringify(started)}`);
    }
    const pid = started.pid;
    const tooLong = (cause?: unknown): QgaTimeoutError =>
      new QgaTimeoutError(this.socketPath, operation, timeoutMs, `the program (pid ${pid} in the guest) may still be running: the agent does not stop it`, cause);

    for (let interval = FIRST_POLL_INTERVAL_MS; ; interval = Math.min(interval * 2, maxPollMs)) {
      let reply: unknown;
      try {
        reply = await this.request<unknown>('guest-exec-status', () => ({ pid }), { timeoutMs: remaining(), signal: opts.signal });
      } catch (error) {
        throw error instanceof QgaTimeoutError ? tooLong(error) : error;
      }
      if (!isJsonObject(reply) || typeof reply.exited !== 'boolean') {
        throw new QgaExecuteError('guest-exec-status', 'InvalidReply', `expected {"exited": boolean, …}, received ${JSON.stringify(reply).slice(0, 200)}`);
      }
      if (reply.exited) {
        if (reply['out-truncated'] === true || reply['err-truncated'] === true) {
          this.log?.warn({ path, pid }, 'guest-exec output was cut by the agent (it keeps at most 16 MB per stream)');
        }
        return {
          exitCode: typeof reply.exitcode === 'number' ? reply.exitcode : undefined,
          signal: typeof reply.signal === 'number' ? reply.signal : undefined,
          stdout: base64Field(reply['out-data']),
          stderr: base64Field(reply['err-data']),
        };
      }
      if (deadline - Date.now() <= interval) throw tooLong();
      try {
        await sleep(interval, opts.signal);
      } catch {
        throw abortError(opts.signal, operation);
      }
    }
  }

  /**
   * Sets the guest's clock: to `nanoseconds` since the epoch, or to the host's clock read at the
   * moment the request is sent (not when it was queued).
   */
  async setTime(nanoseconds?: bigint, opts: QgaRequestOptions = {}): Promise<void> {
    await this.request('guest-set-time', () => ({ time: nanoseconds ?? BigInt(Date.now()) * 1_000_000n }), opts);
  }

  /** Called once when the connection ends; at once (next tick) if it already has. */
  onClose(listener: (error: QgaDisconnectedError) => void): () => void {
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

  /** The last 20 messages sent and received, oldest first; `input-data` shows as "[redacted]". */
  recentExchanges(): Exchange[] {
    return this.exchanges.list();
  }

  /** Each message from now on, secrets redacted, as it is sent or received. */
  observeExchanges(listener: (exchange: Exchange) => void): () => void {
    return this.exchanges.subscribe(listener);
  }

  /** Closes the connection; queued and pending requests reject with QgaDisconnectedError. Idempotent. */
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

  /** Queues one request; re-synchronises first if an earlier one was given up on. */
  private request<T>(command: string, args: () => Args, opts: QgaRequestOptions): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    return this.enqueue(`"${command}"`, opts.signal, async () => {
      if (this.needsSync) await this.syncNow(timeoutMs, opts.signal);
      return this.roundTrip<T>(command, args(), timeoutMs, opts.signal, undefined);
    });
  }

  private async syncNow(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    const id = randomInt(1, 2 ** 47);
    this.decoder.resync();
    // Only our id is accepted, not even an error: the agent writes its 0xFF only when a sync
    // actually runs, so anything else after a 0xFF answers an older sync or a stale request.
    // (The 0xFF we send first itself draws a "JSON parse error, stray …" reply, before the sentinel.)
    await this.roundTrip('guest-sync-delimited', { id }, timeoutMs, signal, (message) => message.return === id);
    this.needsSync = false;
  }

  /**
   * Runs `task` after every request queued before it. An abort while waiting in the queue
   * rejects at once; the task then sees the aborted signal when its turn comes and does nothing.
   */
  private enqueue<T>(operation: string, signal: AbortSignal | undefined, task: () => Promise<T>): Promise<T> {
    const run = this.queueTail.then(() => {
      throwIfAborted(signal, `guest agent request ${operation}`);
      if (this.closedBy) throw this.disconnected(operation);
      return task();
    });
    this.queueTail = run.then(
      () => undefined,
      () => undefined,
    );
    if (!signal) return run;
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(abortError(signal, `guest agent request ${operation}`));
      signal.addEventListener('abort', onAbort, { once: true });
      run.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Sends one request and waits for the reply `accept` takes (the first reply when none given). */
  private roundTrip<T>(
    command: string,
    args: Args,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    accept: PendingRequest['accept'],
  ): Promise<T> {
    const operation = `"${command}"`;
    return boundedWait<T>(
      {
        operation,
        timeoutMs,
        signal,
        waiters: this.waiters,
        timeoutError: () => new QgaTimeoutError(this.socketPath, operation, timeoutMs),
        onGiveUp: () => {
          this.needsSync = true;
        },
      },
      (settle) => {
        if (this.closedBy) {
          settle.reject(this.disconnected(operation));
          return () => {};
        }
        const message: Record<string, unknown> = args === undefined ? { execute: command } : { execute: command, arguments: args };
        const pending: PendingRequest = { command, accept, settle: settle as Settle<unknown> };
        this.pending = pending;
        this.exchanges.record('sent', 'command', command, message);
        this.log?.debug({ command }, 'guest agent request sent');
        const line = encodeMessage(message);
        // Before a sync, 0xFF makes the agent's parser drop any half-read request from earlier.
        this.socket.write(command === 'guest-sync-delimited' ? Buffer.concat([SENTINEL, Buffer.from(line)]) : line);
        return () => {
          if (this.pending === pending) this.pending = undefined;
        };
      },
    );
  }

  private dispatch(frame: Frame): void {
    if (frame.kind === 'malformed') {
      this.exchanges.record('received', 'malformed', undefined, frame.text);
      this.log?.warn({ reason: frame.reason }, 'guest agent sent a line that is not a JSON object; ignored');
      return;
    }
    const message = frame.value;
    const isError = 'error' in message;
    const pending = this.pending;
    if (!pending || (!isError && !('return' in message)) || (pending.accept && !pending.accept(message))) {
      // A reply to a request given up on, or to an older sync: stale.
      this.exchanges.record('received', 'unmatched', undefined, message);
      this.log?.debug({}, 'guest agent reply matches no pending request; dropped');
      return;
    }
    if (isError) {
      const error = isJsonObject(message.error) ? message.error : {};
      const errorClass = typeof error.class === 'string' ? error.class : 'GenericError';
      const desc = typeof error.desc === 'string' ? error.desc : JSON.stringify(message.error);
      this.exchanges.record('received', 'error', pending.command, message);
      pending.settle.reject(new QgaExecuteError(pending.command, errorClass, desc));
    } else {
      this.exchanges.record('received', 'return', pending.command, message);
      pending.settle.resolve(message.return);
    }
  }

  private markClosed(byPeer: boolean): void {
    if (this.closedBy) return;
    this.closedBy = { byPeer };
    for (const waiter of [...this.waiters]) waiter.fail(this.disconnected(waiter.operation));
    this.pending = undefined;
    if (byPeer) this.log?.info({ socketPath: this.socketPath, err: this.lastSocketError }, 'guest agent socket closed by QEMU');
    const error = this.disconnected(undefined);
    for (const listener of [...this.closeListeners]) {
      try {
        listener(error);
      } catch (listenerError) {
        this.log?.warn({ err: listenerError }, 'guest agent close listener threw; ignored');
      }
    }
    this.closeListeners.clear();
    if (byPeer) this.socket.destroy();
  }

  private disconnected(operation: string | undefined): QgaDisconnectedError {
    return new QgaDisconnectedError(this.socketPath, operation, this.closedBy?.byPeer ?? true, this.lastSocketError);
  }
}

/** guest-exec-status leaves out-data / err-data out when the stream was empty. */
function base64Field(value: unknown): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'base64') : Buffer.alloc(0);
}
