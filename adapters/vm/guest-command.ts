import type { QgaClient } from '../qemu/protocol/qga-client.js';
import { nextPollInterval } from '../qemu/protocol/qga-exec.js';
import { isJsonObject } from '../qemu/protocol/framing.js';
import { WarmvmError } from '../support/errors.js';
import { sleep } from '../support/sleep.js';
import { GuestFileTail } from './guest-file.js';
import { killInvocation, outputFiles, outputFolder, removeInvocation, wrapperFailure, wrapperInvocation, type GuestInvocation } from './guest-shell.js';

/**
 * One command run in the guest with its output passed on while it runs: started by the wrapper of
 * guest-shell.ts, its output files read between `guest-exec-status` polls, stopped on request
 * (SIGTERM to its process group, SIGKILL after a grace), its folder removed at the end.
 */

export interface GuestCommandOptions {
  /** The command's whole stdin, sent with guest-exec (`input-data`); none: /dev/null. */
  input?: Buffer;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** When it fires, the command is stopped: SIGTERM, then SIGKILL after `graceMs`. */
  stop?: AbortSignal;
  graceMs: number;
  /** The bound of each agent request (a busy guest under TCG answers slowly). */
  requestTimeoutMs: number;
  /** Longest pause between polls while nothing is written. Default 200 ms. */
  maxPollMs?: number;
  /** Called with the guest pid once the command runs: a caller's cleanup can kill it from then on. */
  onStarted?: (pid: number, kill: (signal: 'TERM' | 'KILL') => Promise<void>) => void;
}

export interface GuestCommandResult {
  pid: number;
  /** Set when the command exited. */
  exitCode: number | undefined;
  /** Set when a signal ended it. */
  signal: number | undefined;
  stdout: Buffer;
  stderr: Buffer;
  /** The last signal warmvm sent it, when `stop` fired. */
  stoppedWith: 'TERM' | 'KILL' | undefined;
}

const DEFAULT_MAX_POLL_MS = 200;

export async function runGuestCommand(qga: QgaClient, command: readonly string[], options: GuestCommandOptions): Promise<GuestCommandResult> {
  const request = { timeoutMs: options.requestTimeoutMs };
  const folder = outputFolder();
  const files = outputFiles(folder);
  const out = new GuestFileTail(qga, files.stdout, request);
  const err = new GuestFileTail(qga, files.stderr, request);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const pid = await spawn(qga, wrapperInvocation(folder, command), options.input, request.timeoutMs);
  const kill = (signal: 'TERM' | 'KILL'): Promise<void> => runQuietly(qga, killInvocation(pid, signal), request.timeoutMs);
  options.onStarted?.(pid, kill);
  let stoppedWith: 'TERM' | 'KILL' | undefined;
  let termSentAt = 0;
  try {
    let status: { exitCode: number | undefined; signal: number | undefined; ownStdout: string } | undefined;
    const startedAt = Date.now();
    for (let interval = 0; ; ) {
      const outChunk = await out.readNew();
      const errChunk = await err.readNew();
      if (outChunk.length > 0) {
        stdout.push(outChunk);
        options.onStdout?.(outChunk);
      }
      if (errChunk.length > 0) {
        stderr.push(errChunk);
        options.onStderr?.(errChunk);
      }
      // Read once more after the exit was seen: what was written between the last read and the exit.
      if (status) break;
      if (options.stop?.aborted) {
        if (stoppedWith === undefined) {
          stoppedWith = 'TERM';
          termSentAt = Date.now();
          await kill('TERM');
        } else if (stoppedWith === 'TERM' && Date.now() - termSentAt >= options.graceMs) {
          stoppedWith = 'KILL';
          await kill('KILL');
        }
      }
      status = await exitStatus(qga, pid, request.timeoutMs);
      if (status) continue;
      interval = outChunk.length + errChunk.length > 0 ? 0 : nextPollInterval(interval, Date.now() - startedAt, options.maxPollMs ?? DEFAULT_MAX_POLL_MS);
      await sleep(interval, options.stop?.aborted ? undefined : options.stop).catch(() => undefined);
    }
    const failure = wrapperFailure(status.exitCode, status.ownStdout);
    if (failure === 'not-found') {
      throw new WarmvmError('E_EXEC_NOT_FOUND', `command not found in the guest: ${command[0]}`, {
        hint: 'give a program on the PATH of the guest agent, or its absolute path; "warmvm exec -- sh -c \'…\'" runs a shell line',
      });
    }
    if (failure === 'no-folder') {
      throw new WarmvmError('E_GUEST_FILE', `the guest could not make the folder ${folder} for the command's output`, {
        hint: "is the guest's /tmp writable and not full?",
      });
    }
    return { pid, exitCode: status.exitCode, signal: status.signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), stoppedWith };
  } finally {
    await out.close().catch(() => undefined);
    await err.close().catch(() => undefined);
    await runQuietly(qga, removeInvocation(folder), request.timeoutMs);
  }
}

async function spawn(qga: QgaClient, invocation: GuestInvocation, input: Buffer | undefined, timeoutMs: number): Promise<number> {
  const args: Record<string, unknown> = { path: invocation.path, arg: invocation.arg, 'capture-output': true };
  if (input !== undefined && input.length > 0) args['input-data'] = input.toString('base64');
  const reply = await qga.execute('guest-exec', args, { timeoutMs });
  if (!isJsonObject(reply) || typeof reply.pid !== 'number') throw new Error(`guest-exec answered ${JSON.stringify(reply).slice(0, 200)}`);
  return reply.pid;
}

/** The command's end, once the agent has seen it (it forgets the pid after saying so). */
async function exitStatus(qga: QgaClient, pid: number, timeoutMs: number): Promise<{ exitCode: number | undefined; signal: number | undefined; ownStdout: string } | undefined> {
  const reply = await qga.execute('guest-exec-status', { pid }, { timeoutMs });
  if (!isJsonObject(reply) || reply.exited !== true) return undefined;
  return {
    exitCode: typeof reply.exitcode === 'number' ? reply.exitcode : undefined,
    signal: typeof reply.signal === 'number' ? reply.signal : undefined,
    // Only the wrapper writes here: the command's own output goes to the files.
    ownStdout: typeof reply['out-data'] === 'string' ? Buffer.from(reply['out-data'], 'base64').toString('utf8') : '',
  };
}

/** A helper program (kill, rm) run to its end; its failure is not the command's. */
async function runQuietly(qga: QgaClient, invocation: GuestInvocation, timeoutMs: number): Promise<void> {
  await qga.exec(invocation.path, invocation.arg, { timeoutMs }).catch(() => undefined);
}
