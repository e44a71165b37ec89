import { createConnection, type Socket } from 'node:net';
import { WarmvmError, abortError, throwIfAborted } from '../../support/errors.js';
import { sleep } from '../../support/sleep.js';
import { socketName, type Channel } from './channel.js';
import { CHANNEL_ERRORS, ProtocolConnectError } from './errors.js';

/**
 * Reaching a channel's unix socket: once, or again and again until QEMU has created it. Failures
 * are the channel's ProtocolConnectError with Node's own error (ENOENT, ECONNREFUSED, …) as cause.
 */

/** Connects once; rejects with the channel's connect error, or E_ABORTED when the signal fires. */
export async function connectSocket(channel: Channel, socketPath: string, signal: AbortSignal | undefined): Promise<Socket> {
  try {
    return await connectUnixSocket(socketPath, signal, `connecting to the ${socketName(channel)} ${socketPath}`);
  } catch (error) {
    if (error instanceof WarmvmError) throw error;
    throw new CHANNEL_ERRORS[channel].Connect({ socketPath, exchanges: [], reason: errnoCode(error) ?? 'unknown error', cause: error });
  }
}

/** How long connectSocketWhenListening keeps trying, and how often. */
export interface ListenOptions {
  /** When to give up, as a Date.now() time. */
  deadline: number;
  /** The same bound as a duration, for the message. */
  deadlineMs: number;
  signal: AbortSignal | undefined;
  /** Pause between attempts while the socket is missing or refuses. */
  retryIntervalMs: number;
}

/**
 * Connects as soon as QEMU has created and opened its socket: retries while the socket is missing
 * or refuses; any other failure is final and thrown at once. At the deadline, the connect error
 * says how many attempts were made and why the last one failed (its `deadlineMs` is set).
 */
export async function connectSocketWhenListening(channel: Channel, socketPath: string, options: ListenOptions): Promise<Socket> {
  const what = `waiting for the ${socketName(channel)} ${socketPath}`;
  let lastError: ProtocolConnectError | undefined;
  for (let attempt = 1; ; attempt += 1) {
    throwIfAborted(options.signal, what);
    if (options.deadline - Date.now() <= 0) {
      throw new CHANNEL_ERRORS[channel].Connect({
        socketPath,
        exchanges: [],
        reason: errnoCode(lastError?.cause) ?? 'no answer',
        cause: lastError,
        within: { deadlineMs: options.deadlineMs, attempts: attempt - 1 },
      });
    }
    try {
      return await connectSocket(channel, socketPath, options.signal);
    } catch (error) {
      if (!(error instanceof ProtocolConnectError && isNotListeningYet(error.cause))) throw error;
      lastError = error;
    }
    await pauseBeforeRetry(options.retryIntervalMs, options.deadline, options.signal, what);
  }
}

/** Sleeps `ms`, never past the deadline; an abort rejects with E_ABORTED naming `what`. */
export async function pauseBeforeRetry(ms: number, deadline: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  try {
    await sleep(Math.min(ms, Math.max(0, deadline - Date.now())), signal);
  } catch {
    throw abortError(signal, what);
  }
}

/**
 * Socket errors that mean "not there yet": QEMU creates its socket a moment after it starts
 * (ENOENT), or the file exists but nothing listens yet or any more (ECONNREFUSED), or the
 * listen backlog is momentarily full (EAGAIN).
 */
function isNotListeningYet(error: unknown): boolean {
  const code = errnoCode(error);
  return code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EAGAIN';
}

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Connects to a unix socket; rejects with Node's own error (its `code` says why) or E_ABORTED. */
function connectUnixSocket(path: string, signal: AbortSignal | undefined, what: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal, what));
    const socket = createConnection({ path });
    const settle = (): void => {
      socket.off('connect', onConnect);
      socket.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    const onConnect = (): void => {
      settle();
      resolve(socket);
    };
    const onError = (error: Error): void => {
      settle();
      socket.destroy();
      reject(error);
    };
    const onAbort = (): void => {
      settle();
      socket.destroy();
      reject(abortError(signal, what));
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
