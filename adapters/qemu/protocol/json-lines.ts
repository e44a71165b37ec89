import { redactedJson, truncate } from '../../support/redact.js';
import { createConnection, type Socket } from 'node:net';
import { abortError } from '../../support/errors.js';

/**
 * The wire QMP and the guest agent share: JSON objects, one per line, in both directions.
 * QEMU ends its lines with "\r\n", qemu-ga with "\n"; both are accepted. Pretty-printed QMP
 * (`-qmp ...,pretty=on`) spreads an object over many lines and is not supported: warmvm writes
 * the QEMU command line itself and never turns it on.
 */

export type JsonObject = { [key: string]: unknown };

/** One line off the wire: a JSON object, or something that was not one (kept for the log). */
export type Frame = { kind: 'object'; value: JsonObject } | { kind: 'malformed'; text: string; reason: string };

const NEWLINE = 0x0a;
/**
 * The guest agent writes 0xFF right before its reply to `guest-sync-delimited`. The byte never
 * occurs in UTF-8 text, so wherever it appears it marks a clean start: whatever came before it
 * is stale or a half-written line.
 */
const SENTINEL = 0xff;

/** Cuts socket chunks into JSON objects, whatever way the chunks split the lines. */
export class JsonStreamDecoder {
  /** Bytes of the line in progress, in arrival order; concatenated once the line is complete. */
  private partial: Buffer[] = [];
  private discarding = false;

  /** Feeds one chunk; returns every frame completed by it, in order. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i += 1) {
      const byte = chunk[i];
      if (byte === SENTINEL) {
        // Anything before the sentinel, complete or not, belongs to an older exchange.
        this.partial = [];
        this.discarding = false;
        start = i + 1;
      } else if (byte === NEWLINE) {
        if (!this.discarding) {
          this.partial.push(chunk.subarray(start, i));
          const frame = parseLine(Buffer.concat(this.partial));
          if (frame) frames.push(frame);
        }
        this.partial = [];
        start = i + 1;
      }
    }
    if (!this.discarding && start < chunk.length) this.partial.push(chunk.subarray(start));
    return frames;
  }

  /**
   * Drops everything until the next 0xFF byte, then resumes. Call it right before sending
   * `guest-sync-delimited`, so replies still in flight from an earlier (timed-out) request
   * never reach a caller.
   */
  resync(): void {
    this.partial = [];
    this.discarding = true;
  }

  /** True while waiting for the 0xFF that ends a resync. */
  get resyncing(): boolean {
    return this.discarding;
  }

  /** Bytes held for an incomplete line (for diagnostics: a peer that stops mid-line). */
  get bufferedBytes(): number {
    return this.partial.reduce((sum, part) => sum + part.length, 0);
  }
}

function parseLine(line: Buffer): Frame | undefined {
  const text = line.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (isJsonObject(value)) return { kind: 'object', value };
    return { kind: 'malformed', text: truncate(text), reason: 'not a JSON object' };
  } catch (error) {
    return { kind: 'malformed', text: truncate(text), reason: error instanceof Error ? error.message : String(error) };
  }
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * One line to send. `bigint` values are written as plain JSON integers: the agent's
 * `guest-set-time` takes nanoseconds since the epoch, which a double cannot hold exactly.
 */
export function encodeMessage(message: JsonObject): string {
  let hasBigint = false;
  const text = JSON.stringify(message, (_key, value: unknown) => {
    if (typeof value !== 'bigint') return value;
    hasBigint = true;
    return `${BIGINT_MARK}${value.toString()}`;
  });
  const line = hasBigint ? text.replace(BIGINT_PATTERN, '$1') : text;
  return `${line}\n`;
}

// A marker no real string contains (a NUL byte and a fixed tag), swapped for the digits afterwards.
const BIGINT_MARK = '\u0000warmvm-bigint:';
const BIGINT_PATTERN = /"\\u0000warmvm-bigint:(-?\d+)"/g;

/** One message in or out, as the inspector and error reports show it. */
export interface Exchange {
  /** ISO time it was sent or received. */
  at: string;
  direction: 'sent' | 'received';
  kind: 'greeting' | 'command' | 'return' | 'error' | 'event' | 'unmatched' | 'malformed';
  /** The command or event name, when there is one. */
  name: string | undefined;
  /** The message as JSON text, secrets redacted, cut to a readable length. */
  text: string;
}

/** The last few exchanges on a connection, oldest first: what a person reads when a start is stuck. */
export class ExchangeRing {
  private readonly entries: Exchange[] = [];
  private readonly listeners = new Set<(exchange: Exchange) => void>();

  constructor(private readonly capacity = 20) {}

  record(direction: Exchange['direction'], kind: Exchange['kind'], name: string | undefined, message: unknown): void {
    const exchange: Exchange = { at: new Date().toISOString(), direction, kind, name, text: redactedJson(message) };
    this.entries.push(exchange);
    if (this.entries.length > this.capacity) this.entries.shift();
    for (const listener of this.listeners) listener({ ...exchange });
  }

  /** Every exchange from now on, as recorded (redacted): for the inspector. */
  subscribe(listener: (exchange: Exchange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  list(): Exchange[] {
    return this.entries.map((entry) => ({ ...entry }));
  }
}

/** The part of a pino logger the clients use; pass `logger.child({ module })`. */
export interface ClientLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** Connects to a unix socket; rejects with Node's own error (its `code` says why) or E_ABORTED. */
export function connectUnixSocket(path: string, signal: AbortSignal | undefined, what: string): Promise<Socket> {
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

/**
 * Socket errors that mean "not there yet": QEMU creates its socket a moment after it starts
 * (ENOENT), or the file exists but nothing listens yet or any more (ECONNREFUSED), or the
 * listen backlog is momentarily full (EAGAIN).
 */
export function isNotListeningYet(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EAGAIN';
}

/** Something a connection is waiting for; failed all at once when the connection closes. */
export interface Waiter {
  readonly operation: string;
  fail(error: Error): void;
}

export interface Settle<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/**
 * Waits for what `start` sets up, bounded by a timeout and an AbortSignal, and registered in
 * `waiters` so the connection can fail it on disconnect. `start` returns its own undo (remove a
 * listener, free a pending slot), run exactly once however the wait ends.
 */
export function boundedWait<T>(
  options: {
    operation: string;
    timeoutMs: number;
    signal: AbortSignal | undefined;
    waiters: Set<Waiter>;
    timeoutError: () => Error;
    /** Runs before the promise rejects on timeout or abort (e.g. "the stream needs a resync"). */
    onGiveUp?: () => void;
  },
  start: (settle: Settle<T>) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const { operation, signal } = options;
    if (signal?.aborted) return reject(abortError(signal, operation));
    let done = false;
    let undo: (() => void) | undefined;
    const finish = (outcome: () => void): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      options.waiters.delete(waiter);
      undo?.();
      outcome();
    };
    const giveUp = (error: Error): void =>
      finish(() => {
        options.onGiveUp?.();
        reject(error);
      });
    const onAbort = (): void => giveUp(abortError(signal, operation));
    const waiter: Waiter = { operation, fail: (error) => finish(() => reject(error)) };
    // setTimeout fires at once for Infinity and overflows past 2^31-1 ms: no timer for "forever".
    const timer =
      Number.isFinite(options.timeoutMs) && options.timeoutMs < 2 ** 31
        ? setTimeout(() => giveUp(options.timeoutError()), Math.max(0, options.timeoutMs))
        : undefined;
    signal?.addEventListener('abort', onAbort, { once: true });
    options.waiters.add(waiter);
    const stop = start({ resolve: (value) => finish(() => resolve(value)), reject: (error) => finish(() => reject(error)) });
    // start may have settled synchronously (e.g. a write that failed at once).
    if (done) stop();
    else undo = stop;
  });
}
