import type { ErrorCode } from '../../../shapes/error-codes.js';
import { WarmvmError } from '../../support/errors.js';
import { redact } from '../../support/redact.js';
import { WORDING, type Channel } from './channel.js';
import type { Exchange } from './exchange-ring.js';
import type { JsonObject } from './framing.js';

/**
 * The errors of both protocol clients, one family. Every one names its channel ('qmp': QEMU's
 * machine protocol, 'qga': the guest agent) and socket, and keeps the last exchanges sent and
 * received there, redacted as the exchange ring holds them. None keeps a guest agent request's
 * arguments: guest-exec's input-data carries secrets.
 *
 *   WarmvmError
 *   └─ ProtocolError                  channel, socketPath, exchanges
 *      ├─ ProtocolConnectError        the socket cannot be reached        QmpConnectError E_QMP_CONNECT, QgaConnectError E_QGA_CONNECT
 *      ├─ ProtocolTimeoutError        no answer within the bound          QmpTimeoutError E_QMP_TIMEOUT, QgaTimeoutError E_QGA_TIMEOUT
 *      ├─ ProtocolDisconnectedError   closed while something waited       QmpDisconnectedError E_QMP_DISCONNECTED, QgaDisconnectedError E_QGA_DISCONNECTED
 *      ├─ ProtocolExecuteError        the peer answered {"error": …}      QmpExecuteError E_QMP_EXECUTE (+ args, redacted), QgaExecuteError E_QGA_EXECUTE
 *      ├─ QmpGreetingError            E_QMP_GREETING: the first message was not a QEMU greeting
 *      ├─ QmpNegotiationError         E_QMP_NEGOTIATION: QEMU refused qmp_capabilities
 *      └─ QmpStateError               E_QMP_STATE: a client used before its handshake finished
 *
 * A cancelled wait is not a protocol error: it rejects with E_ABORTED (support/errors.ts).
 */

/** Where an error happened, and what was said there last. */
export interface ErrorContext {
  socketPath: string;
  /** The last exchanges on the connection, oldest first, redacted; empty when none was open. */
  exchanges: readonly Exchange[];
}

/** The base of the family: which channel and socket, and the last exchanges there. */
export class ProtocolError extends WarmvmError {
  readonly channel: Channel;
  readonly socketPath: string;
  declare readonly exchanges: readonly Exchange[];

  constructor(channel: Channel, code: ErrorCode, context: ErrorContext, message: string, options: { hint: string; cause?: unknown }) {
    super(code, message, options);
    this.channel = channel;
    this.socketPath = context.socketPath;
    // Not enumerable: a logged error (pino copies enumerable fields) must not carry a guest's output.
    Object.defineProperty(this, 'exchanges', { value: [...context.exchanges], enumerable: false });
  }
}

/** What a connect error says: why the last attempt failed, and whether it gave up at a deadline. */
export interface ConnectDetails extends ErrorContext {
  /** Node's error code (ENOENT, ECONNREFUSED, …), or "no answer". */
  reason: string;
  /** Node's error, or the last attempt's connect error. */
  cause: unknown;
  /** Set when retries went on until a deadline: how long, and how many attempts. */
  within?: { deadlineMs: number; attempts: number };
}

/** The socket cannot be reached: missing, refused, or still missing at the deadline. */
export class ProtocolConnectError extends ProtocolError {
  /** Set when it retried until this many ms had passed; undefined for a single attempt. */
  readonly deadlineMs: number | undefined;

  constructor(channel: Channel, details: ConnectDetails) {
    const wording = WORDING[channel];
    const { socketPath, reason, within } = details;
    const message = within ? wording.notReady(socketPath, within.deadlineMs, within.attempts, reason) : `cannot connect to the ${wording.socket} ${socketPath} (${reason})`;
    super(channel, wording.codes.connect, details, message, { hint: wording.connectHint, cause: details.cause });
    this.deadlineMs = within?.deadlineMs;
  }
}

/** What a timeout says: what waited, how long, and what to do when the usual advice does not fit. */
export interface TimeoutDetails extends ErrorContext {
  operation: string;
  timeoutMs: number;
  hint?: string;
  cause?: unknown;
}

/** No answer within the bound: the peer is hung, busy, or not there (the agent's socket accepts anyway). */
export class ProtocolTimeoutError extends ProtocolError {
  readonly operation: string;
  readonly timeoutMs: number;

  constructor(channel: Channel, details: TimeoutDetails) {
    const wording = WORDING[channel];
    const message = wording.timeout(details.socketPath, details.operation, details.timeoutMs);
    super(channel, wording.codes.timeout, details, message, { hint: details.hint ?? wording.timeoutHint, cause: details.cause });
    this.operation = details.operation;
    this.timeoutMs = details.timeoutMs;
  }
}

/** What a disconnect says: what was waiting, and which side closed. */
export interface DisconnectedDetails extends ErrorContext {
  /** What was waiting on the connection; undefined for onClose listeners. */
  operation: string | undefined;
  /** True when QEMU (or whatever held the other end) hung up, false when this side closed. */
  byPeer: boolean;
  /** The socket's own error, when it had one before it closed. */
  cause?: unknown;
}

/** The connection closed while something was waiting on it. */
export class ProtocolDisconnectedError extends ProtocolError {
  readonly operation: string | undefined;
  readonly byPeer: boolean;

  constructor(channel: Channel, details: DisconnectedDetails) {
    const { link, codes } = WORDING[channel];
    const { socketPath, operation, byPeer } = details;
    const during = operation === undefined ? '' : ` during ${operation}`;
    const message = byPeer ? `QEMU closed the ${link} ${socketPath}${during}` : `the ${link} ${socketPath} was closed by warmvm${during}`;
    const hint = byPeer ? 'QEMU probably exited or crashed: read its log in the instance folder' : 'nothing to fix: the caller closed it on purpose';
    super(channel, codes.disconnected, details, message, { hint, cause: details.cause });
    this.operation = operation;
    this.byPeer = byPeer;
  }
}

/** What an execute error says: the command and the peer's own reason. */
export interface ExecuteDetails extends ErrorContext {
  command: string;
  errorClass: string;
  desc: string;
  /** The request's arguments: QmpExecuteError keeps them redacted; QgaExecuteError never does. */
  args?: JsonObject | undefined;
}

/** The peer answered a command with `{"error": {"class": …, "desc": …}}`. */
export class ProtocolExecuteError extends ProtocolError {
  readonly command: string;
  readonly errorClass: string;
  readonly desc: string;

  constructor(channel: Channel, details: ExecuteDetails) {
    const wording = WORDING[channel];
    const { command, errorClass, desc } = details;
    const message = `${wording.name} command "${command}" failed: ${desc} (${errorClass})`;
    super(channel, wording.codes.execute, details, message, { hint: wording.executeHint(errorClass, desc) });
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** E_QMP_CONNECT: QEMU's QMP socket cannot be reached. */
export class QmpConnectError extends ProtocolConnectError {
  constructor(details: ConnectDetails) {
    super('qmp', details);
  }
}

/** E_QGA_CONNECT: the guest agent's socket cannot be reached. */
export class QgaConnectError extends ProtocolConnectError {
  constructor(details: ConnectDetails) {
    super('qga', details);
  }
}

/** E_QMP_TIMEOUT: QEMU did not answer in time. */
export class QmpTimeoutError extends ProtocolTimeoutError {
  constructor(details: TimeoutDetails) {
    super('qmp', details);
  }
}

/** E_QGA_TIMEOUT: the guest agent did not answer in time. */
export class QgaTimeoutError extends ProtocolTimeoutError {
  constructor(details: TimeoutDetails) {
    super('qga', details);
  }
}

/** E_QMP_DISCONNECTED: the QMP connection closed under a wait. */
export class QmpDisconnectedError extends ProtocolDisconnectedError {
  constructor(details: DisconnectedDetails) {
    super('qmp', details);
  }
}

/** E_QGA_DISCONNECTED: the guest agent's connection closed under a wait. */
export class QgaDisconnectedError extends ProtocolDisconnectedError {
  constructor(details: DisconnectedDetails) {
    super('qga', details);
  }
}

/** E_QMP_EXECUTE: QEMU refused a command; keeps its arguments, redacted, for the person debugging it. */
export class QmpExecuteError extends ProtocolExecuteError {
  readonly args: Record<string, unknown> | undefined;

  constructor(details: ExecuteDetails) {
    super('qmp', details);
    this.args = details.args === undefined ? undefined : (redact(details.args) as Record<string, unknown>);
  }
}

/** E_QGA_EXECUTE: the guest agent refused a command (its arguments are not kept: they may hold secrets). */
export class QgaExecuteError extends ProtocolExecuteError {
  constructor(details: ExecuteDetails) {
    super('qga', { ...details, args: undefined });
  }
}

/** E_QMP_GREETING: the first message was not a QMP greeting (not QEMU, or one too old or too new). */
export class QmpGreetingError extends ProtocolError {
  constructor(
    context: ErrorContext,
    /** The first message, as JSON text cut to 200 characters. */
    readonly received: string,
  ) {
    super('qmp', 'E_QMP_GREETING', context, `the QMP socket ${context.socketPath} did not greet like QEMU (received ${received})`, {
      hint: 'check that the path is a QEMU -qmp socket (not a monitor, serial or guest agent socket)',
    });
  }
}

/** E_QMP_NEGOTIATION: QEMU answered `qmp_capabilities` with an error (kept as `cause`). */
export class QmpNegotiationError extends ProtocolError {
  constructor(context: ErrorContext, cause: QmpExecuteError) {
    super('qmp', 'E_QMP_NEGOTIATION', context, `QEMU refused QMP capabilities negotiation on ${context.socketPath}: ${cause.desc}`, {
      hint: 'another client may have negotiated on this connection already; report it with the QEMU version',
      cause,
    });
  }
}

/** E_QMP_STATE: a QMP client used before its handshake finished (a warmvm bug). */
export class QmpStateError extends ProtocolError {
  constructor(context: ErrorContext, what: string) {
    super('qmp', 'E_QMP_STATE', context, `QMP client on ${context.socketPath} used before its handshake finished: ${what}`, {
      hint: 'this is a warmvm bug (connect() hands a client out only after its handshake): please report it',
    });
  }
}

/** Each kind's class for a channel: the connection throws these, so `instanceof QmpTimeoutError` holds. */
export const CHANNEL_ERRORS: Record<
  Channel,
  {
    Connect: new (details: ConnectDetails) => ProtocolConnectError;
    Timeout: new (details: TimeoutDetails) => ProtocolTimeoutError;
    Disconnected: new (details: DisconnectedDetails) => ProtocolDisconnectedError;
    Execute: new (details: ExecuteDetails) => ProtocolExecuteError;
  }
> = {
  qmp: { Connect: QmpConnectError, Timeout: QmpTimeoutError, Disconnected: QmpDisconnectedError, Execute: QmpExecuteError },
  qga: { Connect: QgaConnectError, Timeout: QgaTimeoutError, Disconnected: QgaDisconnectedError, Execute: QgaExecuteError },
};
