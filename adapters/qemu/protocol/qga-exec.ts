import { abortError } from '../../support/errors.js';
import { redactedJson } from '../../support/redact.js';
import { sleep } from '../../support/sleep.js';
import type { ClientLogger } from './connection.js';
import { QgaExecuteError, QgaTimeoutError, type ErrorContext } from './errors.js';
import { isJsonObject } from './framing.js';

/**
 * `guest-exec` and its `guest-exec-status` polls: running a program in the guest to its exit,
 * through the guest agent's request queue (QgaClient.exec is the way in).
 */

/** Options of QgaClient.exec. */
export interface QgaExecOptions {
  /** Written to the command's stdin. May carry secrets: never logged, kept, or put in an error. */
  inputData?: string | Buffer;
  /** `NAME=value` entries for the command's environment. */
  env?: string[];
  /** Bound for the whole run, from start to exit. Default 60 s. */
  timeoutMs?: number;
  /** Longest pause between status polls; polling starts at 10 ms and doubles up to this (up to 20 ms in the first second). Default 100 ms. */
  pollIntervalMs?: number;
  /**
   * Called once the agent has started the program, before the first status poll is queued: a
   * request queued here (the clock, say) runs while the program does instead of after it.
   */
  onStarted?: (pid: number) => void;
  signal?: AbortSignal;
}

/** How the program ended, and what it wrote. */
export interface QgaExecResult {
  /** Set when the command exited normally. */
  exitCode: number | undefined;
  /** Set when a signal killed the command. */
  signal: number | undefined;
  stdout: Buffer;
  stderr: Buffer;
}

/** The part of a guest agent connection a run needs: its queue, its error context, its log. */
export interface ExecAgent {
  request(command: string, args: Record<string, unknown>, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown>;
  context(): ErrorContext;
  log: ClientLogger | undefined;
}

const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const FIRST_POLL_INTERVAL_MS = 10;
/** The longest pause in a program's first second, when most rotate hooks end. */
const EARLY_POLL_INTERVAL_MS = 20;
const EARLY_MS = 1_000;
const DEFAULT_MAX_POLL_INTERVAL_MS = 100;

/** Starts `path` in the guest with captured output and polls, backing off, until it exits or the bound passes. */
export async function runGuestExec(agent: ExecAgent, path: string, args: string[], opts: QgaExecOptions): Promise<QgaExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const maxPollMs = opts.pollIntervalMs ?? DEFAULT_MAX_POLL_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  const remaining = (): number => Math.max(1, deadline - Date.now());
  const operation = `guest-exec of ${path}`;
  const execArgs: Record<string, unknown> = { path, arg: args, 'capture-output': true };
  if (opts.env) execArgs.env = opts.env;
  if (opts.inputData !== undefined) execArgs['input-data'] = Buffer.from(opts.inputData).toString('base64');

  const started = await agent.request('guest-exec', execArgs, remaining(), opts.signal);
  if (!isJsonObject(started) || typeof started.pid !== 'number') {
    throw invalidReply(agent, 'guest-exec', `expected {"pid": number}, received ${redactedJson(started, 200)}`);
  }
  const pid = started.pid;
  opts.onStarted?.(pid);
  const tooLong = (cause?: unknown): QgaTimeoutError =>
    new QgaTimeoutError({
      ...agent.context(),
      operation,
      timeoutMs,
      hint: `the program (pid ${pid} in the guest) may still be running: the agent does not stop it`,
      cause,
    });

  const startedAt = Date.now();
  for (let interval = nextPollInterval(0, 0, maxPollMs); ; interval = nextPollInterval(interval, Date.now() - startedAt, maxPollMs)) {
    let reply: unknown;
    try {
      reply = await agent.request('guest-exec-status', { pid }, remaining(), opts.signal);
    } catch (error) {
      throw error instanceof QgaTimeoutError ? tooLong(error) : error;
    }
    if (!isJsonObject(reply) || typeof reply.exited !== 'boolean') {
      throw invalidReply(agent, 'guest-exec-status', `expected {"exited": boolean, …}, received ${redactedJson(reply, 200)}`);
    }
    if (reply.exited) {
      if (reply['out-truncated'] === true || reply['err-truncated'] === true) {
        agent.log?.warn({ path, pid }, 'guest-exec output was cut by the agent (it keeps at most 16 MB per stream)');
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
 * The pause before the next status poll, `elapsedMs` after the program started (`previousMs` 0: the
 * first): FIRST_POLL_INTERVAL_MS, then doubling up to EARLY_POLL_INTERVAL_MS for the program's first
 * second, then up to `maxMs`. Doubling to 100 ms at once saw a 0.27 s hook's end up to 100 ms late:
 * capped at 20 ms, the demo guest's rotation took 0.05 s less under TCG (medians of 8 resumes,
 * alternated in one run), although each poll is work for the agent inside the guest.
 */
export function nextPollInterval(previousMs: number, elapsedMs: number, maxMs: number): number {
  const first = Math.min(FIRST_POLL_INTERVAL_MS, maxMs);
  if (previousMs <= 0) return first;
  const doubled = Math.min(Math.max(previousMs, first) * 2, maxMs);
  return elapsedMs < EARLY_MS ? Math.min(doubled, Math.max(EARLY_POLL_INTERVAL_MS, first)) : doubled;
}

function invalidReply(agent: ExecAgent, command: string, desc: string): QgaExecuteError {
  return new QgaExecuteError({ ...agent.context(), command, errorClass: 'InvalidReply', desc });
}

/** guest-exec-status leaves out-data / err-data out when the stream was empty. */
function base64Field(value: unknown): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'base64') : Buffer.alloc(0);
}
