import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { abortError, throwIfAborted } from '../../support/errors.js';
import { connectSocket, connectSocketWhenListening, pauseBeforeRetry } from './connect.js';
import { JsonLinesConnection, type ClientLogger } from './connection.js';
import { QgaConnectError, QgaDisconnectedError, QgaTimeoutError } from './errors.js';
import type { JsonObject } from './framing.js';
import { runGuestExec, type QgaExecOptions, type QgaExecResult } from './qga-exec.js';

/**
 * A client for the QEMU guest agent (qemu-ga) through the host side of its chardev socket, over
 * the shared JSON-lines connection (./connection.ts). It fails with the Qga* errors of ./errors.ts.
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

/** Options of QgaClient.connect. */
export interface QgaConnectOptions {
  /** Bound for connecting and the first sync. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  logger?: ClientLogger;
}

/** Options of QgaClient.connectWhenReady. */
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

/** Options of one agent request. */
export interface QgaRequestOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 1_000;
const DEFAULT_RETRY_INTERVAL_MS = 20;
const SYNC = 'guest-sync-delimited';
/** The 0xFF the agent's parser takes as "drop whatever partial input you hold". */
const SENTINEL = Buffer.from([0xff]);

type Args = Record<string, unknown> | undefined;

/** A guest agent connection: a queue of requests, one on the wire at a time, resynchronised after any given up on. */
export class QgaClient extends JsonLinesConnection {
  /** Settles when the last queued request has; each request starts after the one before. */
  private queueTail: Promise<void> = Promise.resolve();
  /** Set when a request was given up on: its reply may still come and must not be taken for another's. */
  private needsSync = true;

  private constructor(socketPath: string, socket: Socket, logger: ClientLogger | undefined) {
    super('qga', socketPath, socket, logger);
  }

  /** Connects and synchronises with the agent; fails with QgaTimeoutError if no agent answers. */
  static async connect(socketPath: string, opts: QgaConnectOptions = {}): Promise<QgaClient> {
    const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    const client = new QgaClient(socketPath, await connectSocket('qga', socketPath, opts.signal), opts.logger);
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
    const listen = { deadline, deadlineMs: opts.deadlineMs, signal: opts.signal, retryIntervalMs: opts.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS };
    const what = `waiting for the guest agent on ${socketPath}`;
    let client: QgaClient | undefined;
    let lastError: unknown;
    let syncs = 0;
    const noAgent = (cause: unknown): QgaTimeoutError =>
      new QgaTimeoutError({
        socketPath,
        exchanges: client?.recentExchanges() ?? [],
        operation: `${SYNC} (${syncs} attempts)`,
        timeoutMs: opts.deadlineMs,
        hint: 'the socket is up but no agent answered: is qemu-guest-agent installed and started in the guest, on a virtserialport named org.qemu.guest_agent.0?',
        cause,
      });
    try {
      for (;;) {
        throwIfAborted(opts.signal, what);
        if (!client || client.closed) {
          try {
            client = new QgaClient(socketPath, await connectSocketWhenListening('qga', socketPath, listen), opts.logger);
          } catch (error) {
            // Connected before, and the socket stayed away until the deadline: the agent never answered.
            throw syncs > 0 && error instanceof QgaConnectError && error.deadlineMs !== undefined ? noAgent(error) : error;
          }
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw noAgent(lastError);
        syncs += 1;
        try {
          await client.sync({ timeoutMs: Math.min(attemptTimeoutMs, remaining), signal: opts.signal });
          const ready = client;
          client = undefined;
          return ready;
        } catch (error) {
          if (!(error instanceof QgaTimeoutError || error instanceof QgaDisconnectedError)) throw error;
          lastError = error;
          if (error instanceof QgaDisconnectedError) await pauseBeforeRetry(listen.retryIntervalMs, deadline, opts.signal, what);
        }
      }
    } finally {
      await client?.close();
    }
  }

  /**
   * `guest-sync-delimited` with a random id: everything the agent sent before its 0xFF sentinel,
   * and any reply with another id, is stale and dropped.
   */
  sync(opts: QgaRequestOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    return this.enqueue(SYNC, opts.signal, () => this.syncNow(timeoutMs, opts.signal));
  }

  /** `guest-ping`: resolves when the agent answers. */
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
  exec(path: string, args: string[], opts: QgaExecOptions = {}): Promise<QgaExecResult> {
    const agent = {
      request: (command: string, commandArgs: Args, timeoutMs: number, signal: AbortSignal | undefined) => this.request(command, () => commandArgs, { timeoutMs, signal }),
      context: () => this.errorContext(),
      log: this.log,
    };
    return runGuestExec(agent, path, args, opts);
  }

  /**
   * Sets the guest's clock: to `nanoseconds` since the epoch, or to the host's clock read at the
   * moment the request is sent (not when it was queued).
   */
  async setTime(nanoseconds?: bigint, opts: QgaRequestOptions = {}): Promise<void> {
    await this.request('guest-set-time', () => ({ time: nanoseconds ?? BigInt(Date.now()) * 1_000_000n }), opts);
  }

  // -------------------------------------------------------------------------------------------

  /** Queues one request; re-synchronises first if an earlier one was given up on. */
  private request<T>(command: string, args: () => Args, opts: QgaRequestOptions): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    return this.enqueue(`"${command}"`, opts.signal, async () => {
      if (this.needsSync) await this.syncNow(timeoutMs, opts.signal);
      return this.roundTrip<T>(command, args(), timeoutMs, opts.signal, () => true);
    });
  }

  private async syncNow(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    const id = randomInt(1, 2 ** 47);
    this.resync();
    // Only our id is accepted, not even an error: the agent writes its 0xFF only when a sync
    // actually runs, so anything else after a 0xFF answers an older sync or a stale request.
    // (The 0xFF we send first itself draws a "JSON parse error, stray …" reply, before the sentinel.)
    await this.roundTrip(SYNC, { id }, timeoutMs, signal, (reply) => reply.return === id);
    this.needsSync = false;
    this.markOpen();
  }

  /**
   * Runs `task` after every request queued before it. An abort while waiting in the queue
   * rejects at once; the task then sees the aborted signal when its turn comes and does nothing.
   */
  private enqueue<T>(operation: string, signal: AbortSignal | undefined, task: () => Promise<T>): Promise<T> {
    const run = this.queueTail.then(() => {
      throwIfAborted(signal, `guest agent request ${operation}`);
      if (this.closed) throw this.disconnected(operation);
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

  /** Sends one request and waits for the reply `matches` takes; before a sync, 0xFF makes the agent drop any half-read input. */
  private roundTrip<T>(command: string, args: Args, timeoutMs: number, signal: AbortSignal | undefined, matches: (reply: JsonObject) => boolean): Promise<T> {
    const message: JsonObject = args === undefined ? { execute: command } : { execute: command, arguments: args };
    return this.send<T>({
      command,
      message,
      operation: `"${command}"`,
      timeoutMs,
      signal,
      matches,
      prefix: command === SYNC ? SENTINEL : undefined,
      onGiveUp: () => {
        this.needsSync = true;
      },
    });
  }
}
