import { acquireAgentLock } from '../../adapters/instance/agent-lock.js';
import { instancePaths, type InstancePaths } from '../../adapters/instance/paths.js';
import { readInstanceState } from '../../adapters/instance/state.js';
import { QgaClient } from '../../adapters/qemu/protocol/qga-client.js';
import { QgaConnectError, QgaDisconnectedError, QgaTimeoutError } from '../../adapters/qemu/protocol/errors.js';
import { CleanupStack } from '../../adapters/support/cleanup.js';
import { errorCode, WarmvmError } from '../../adapters/support/errors.js';
import { fileExists } from '../../adapters/support/file-exists.js';
import { readToEnd } from '../../adapters/support/read-stream.js';
import { textOrBase64 } from '../../adapters/support/utf8.js';
import { instanceStatus, notRunning } from '../../adapters/vm/control.js';
import { runGuestCommand, type GuestCommandResult } from '../../adapters/vm/guest-command.js';
import { shellExitStatus } from '../../adapters/vm/guest-shell.js';
import { onInterrupt } from '../interrupt.js';
import type { Output } from '../output.js';

export interface ExecOptions {
  name: string;
  home: string;
  command: string[];
  /** `--timeout`, in seconds; undefined: no bound (Ctrl-C stops it). */
  timeout: string | undefined;
  /** Forward warmvm's stdin when it is not a terminal. */
  stdin: boolean;
  output: Output;
}

/** Exit statuses of warmvm exec's own failures, apart from the guest command's (as `timeout`, docker and shells use them). */
export const EXEC_EXIT = { timeout: 124, failed: 125, notFound: 127, interrupted: 130 } as const;

/** The guest agent takes input-data in one JSON message (base64): keep it well under QEMU's limits. */
const STDIN_LIMIT = 8 * 1024 * 1024;
/** A guest under TCG, busy with the command, answers slowly: each agent request gets this long. */
const REQUEST_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** How long an exec waits for another one to let go of the agent. */
const AGENT_WAIT_MS = 10_000;
/** SIGTERM first; SIGKILL when the command is still there after this. */
const GRACE_MS = 5_000;

/** `warmvm exec`: runs a command in a running instance's guest, its output passed on as it comes, its exit status warmvm's. */
export async function execCommand(options: ExecOptions): Promise<number> {
  const cleanup = new CleanupStack();
  const stop = new AbortController();
  const stopListening = onInterrupt(
    () => {
      if (!options.output.json) options.output.progress.line('warmvm: interrupted; stopping the guest command (Ctrl-C again to leave now)');
      stop.abort('interrupt');
    },
    () => cleanup.runAll(),
  );
  const partial: { stdout: Buffer[]; stderr: Buffer[] } = { stdout: [], stderr: [] };
  try {
    const timeoutSeconds = parseTimeout(options.timeout);
    const paths = instancePaths(options.home, options.name);
    await assertReady(paths);
    const input = options.stdin && process.stdin.isTTY !== true ? await readToEnd(process.stdin, STDIN_LIMIT, 'the standard input') : undefined;
    const lock = await acquireAgentLock(paths.agentLockFile, paths.name, { waitMs: AGENT_WAIT_MS, signal: stop.signal });
    cleanup.add('agent lock', () => lock.release());
    const qga = await connect(paths);
    cleanup.add('agent connection', () => qga.close());
    if (timeoutSeconds !== undefined) {
      const timer = setTimeout(() => stop.abort('timeout'), timeoutSeconds * 1000);
      cleanup.add('timeout', () => clearTimeout(timer));
    }
    let killOnExit: { release(): void } | undefined;
    const result = await runGuestCommand(qga, options.command, {
      input,
      graceMs: GRACE_MS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      stop: stop.signal,
      onStdout: (chunk) => (options.output.json ? partial.stdout.push(chunk) : process.stdout.write(chunk)),
      onStderr: (chunk) => (options.output.json ? partial.stderr.push(chunk) : process.stderr.write(chunk)),
      // A second Ctrl-C leaves at once: the command is killed on the way out, its folder left to /tmp.
      onStarted: (_pid, kill) => {
        killOnExit = cleanup.add('guest command', () => kill('KILL'));
      },
    })
      .catch((error: unknown) => {
        throw agentError(error, paths);
      })
      .finally(() => killOnExit?.release());
    const stoppedBy = stop.signal.aborted && result.stoppedWith !== undefined ? (stop.signal.reason as 'timeout' | 'interrupt') : undefined;
    if (stoppedBy !== undefined) throw stoppedError(stoppedBy, result, timeoutSeconds);
    const status = shellExitStatus(result.exitCode, result.signal);
    if (options.output.json) options.output.result(jsonResult(status, result), '');
    return status;
  } catch (error) {
    const extra = options.output.json ? jsonOutput(Buffer.concat(partial.stdout), Buffer.concat(partial.stderr)) : {};
    options.output.error(error, extra);
    return exitStatusOf(error);
  } finally {
    stopListening();
    await cleanup.runAll();
  }
}

/** What exit status a failure of warmvm exec itself gives. */
export function exitStatusOf(error: unknown): number {
  switch (errorCode(error)) {
    case 'E_EXEC_TIMEOUT':
      return EXEC_EXIT.timeout;
    case 'E_EXEC_NOT_FOUND':
      return EXEC_EXIT.notFound;
    case 'E_ABORTED':
      return EXEC_EXIT.interrupted;
    default:
      return EXEC_EXIT.failed;
  }
}

export function jsonResult(status: number, result: Pick<GuestCommandResult, 'signal' | 'stdout' | 'stderr'>): Record<string, unknown> {
  return { exitCode: status, ...(result.signal !== undefined ? { signal: result.signal } : {}), ...jsonOutput(result.stdout, result.stderr) };
}

/** Output as text; bytes that are not UTF-8 show as U+FFFD, and the exact bytes come beside in base64. */
function jsonOutput(stdout: Buffer, stderr: Buffer): Record<string, unknown> {
  const out = textOrBase64(stdout);
  const err = textOrBase64(stderr);
  return {
    stdout: out.text,
    stderr: err.text,
    ...(out.base64 !== undefined ? { stdoutBase64: out.base64 } : {}),
    ...(err.base64 !== undefined ? { stderrBase64: err.base64 } : {}),
  };
}

/** The instance exists, runs, was brought up by a start that finished, and has an agent. */
async function assertReady(paths: InstancePaths): Promise<void> {
  if (!(await fileExists(paths.dir))) {
    throw new WarmvmError('E_NO_INSTANCE', `there is no instance "${paths.name}"`, {
      hint: `"warmvm list" shows the instances; "warmvm start --name ${paths.name}" starts one of that name`,
    });
  }
  const status = await instanceStatus(paths, { health: false });
  if (status.busyWith !== undefined) {
    throw new WarmvmError('E_AGENT_BUSY', `instance "${paths.name}" is busy: warmvm pid ${status.busyWith} is starting, stopping or capturing it`, {
      hint: `run the command again once pid ${status.busyWith} has finished ("warmvm status --name ${paths.name}" shows when)`,
    });
  }
  if (status.state !== 'running') {
    if (status.suspendedAt !== undefined) {
      throw new WarmvmError('E_NOT_RUNNING', `instance "${paths.name}" is suspended, not running`, { hint: `"warmvm start --name ${paths.name}" wakes it` });
    }
    throw notRunning(paths.name);
  }
  if (!status.ready) {
    throw new WarmvmError('E_NOT_RUNNING', `instance "${paths.name}" is not ready: the start that launched its QEMU (pid ${status.pid}) did not finish`, {
      hint: `"warmvm start --name ${paths.name}" starts it again`,
    });
  }
  const state = await readInstanceState(paths.stateFile);
  if (!state?.argv.some((arg) => arg.includes('name=org.qemu.guest_agent.0'))) {
    throw new WarmvmError('E_NO_AGENT', `instance "${paths.name}" has no guest agent: its config says "agent": false`, {
      hint: `warmvm exec runs commands through the QEMU guest agent: set "agent": true in the config (the guest must run qemu-guest-agent), then "warmvm stop --name ${paths.name}" and start it again`,
    });
  }
}

async function connect(paths: InstancePaths): Promise<QgaClient> {
  try {
    return await QgaClient.connect(paths.qgaSocket, { timeoutMs: CONNECT_TIMEOUT_MS });
  } catch (error) {
    throw agentError(error, paths);
  }
}

/** The agent failing, with what to do about it. */
function agentError(error: unknown, paths: InstancePaths): unknown {
  const restart = `"warmvm stop --name ${paths.name}" then "warmvm start --name ${paths.name}" restarts the guest`;
  if (error instanceof QgaTimeoutError) {
    return new WarmvmError('E_QGA_TIMEOUT', `the guest agent of instance "${paths.name}" does not answer`, {
      hint: `is qemu-guest-agent running in the guest? "warmvm logs --name ${paths.name}" shows the guest's console; ${restart}`,
      cause: error,
    });
  }
  if (error instanceof QgaConnectError) {
    return new WarmvmError('E_QGA_CONNECT', `cannot reach the guest agent socket of instance "${paths.name}" (${paths.qgaSocket})`, {
      hint: `is its QEMU still running? "warmvm status --name ${paths.name}" says; ${restart}`,
      cause: error,
    });
  }
  if (error instanceof QgaDisconnectedError) {
    return new WarmvmError('E_QGA_DISCONNECTED', `the guest agent of instance "${paths.name}" hung up while the command ran`, {
      hint: `did the instance stop? "warmvm status --name ${paths.name}" says`,
      cause: error,
    });
  }
  return error;
}

function stoppedError(by: 'timeout' | 'interrupt', result: GuestCommandResult, timeoutSeconds: number | undefined): WarmvmError {
  const how = `(SIG${result.stoppedWith} sent to guest pid ${result.pid}${result.signal !== undefined ? `, ended by signal ${result.signal}` : `, exited ${result.exitCode}`})`;
  if (by === 'interrupt') return new WarmvmError('E_ABORTED', `the guest command was stopped (Ctrl-C) ${how}`);
  return new WarmvmError('E_EXEC_TIMEOUT', `the guest command ran longer than --timeout ${timeoutSeconds} s and was stopped ${how}`, {
    hint: 'give a longer --timeout, or none',
  });
}

/** `--timeout S`: a positive number of seconds. */
export function parseTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new WarmvmError('E_USAGE', `--timeout ${value} is not a number of seconds`, { hint: 'give a positive number, e.g. --timeout 30 or --timeout 0.5' });
  }
  return seconds;
}
