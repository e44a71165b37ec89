import type { ErrorCode } from '../../../shapes/error-codes.js';

/**
 * The two channels a protocol connection can be, and the words each one's errors and logs use:
 * the codes, messages and hints are data here, so one error class per kind serves both.
 */

/** Which protocol a connection speaks: QEMU's machine protocol, or the guest agent's. */
export type Channel = 'qmp' | 'qga';

/** How a channel's errors and logs read: a person sees these words, so they name the channel's own parts. */
export interface Wording {
  /** The protocol: "QMP", "guest agent". */
  name: string;
  /** The socket: "QMP socket", "guest agent socket". */
  socket: string;
  /** The connection, as a disconnect names it. */
  link: string;
  codes: Record<'connect' | 'timeout' | 'disconnected' | 'execute', ErrorCode>;
  connectHint: string;
  timeoutHint: string;
  timeout(socketPath: string, operation: string, timeoutMs: number): string;
  notReady(socketPath: string, deadlineMs: number, attempts: number, reason: string): string;
  executeHint(errorClass: string, desc: string): string;
}

/** Each channel's words. */
export const WORDING: Record<Channel, Wording> = {
  qmp: {
    name: 'QMP',
    socket: 'QMP socket',
    link: 'QMP connection',
    codes: { connect: 'E_QMP_CONNECT', timeout: 'E_QMP_TIMEOUT', disconnected: 'E_QMP_DISCONNECTED', execute: 'E_QMP_EXECUTE' },
    connectHint: 'check that QEMU is running and was started with -qmp unix:<this path>,server=on,wait=off; its log says why it stopped',
    timeoutHint: 'QEMU may be hung or busy: read its log; run with --inspect to see the last QMP exchanges',
    timeout: (socketPath, operation, timeoutMs) => `no answer on QMP socket ${socketPath} for ${operation} within ${timeoutMs} ms`,
    notReady: (socketPath, deadlineMs, attempts, reason) => `QMP socket ${socketPath} was not ready within ${deadlineMs} ms (${attempts} attempts, last: ${reason})`,
    executeHint: (errorClass) => {
      if (errorClass === 'CommandNotFound') return 'this QEMU does not have the command: check `qemu-system-x86_64 --version` against what warmvm needs';
      if (errorClass === 'DeviceNotFound') return 'the device id does not exist on this VM: compare with the QEMU command line';
      return 'the reply above is QEMU’s own reason; the last QMP exchanges are in the trace and the inspector';
    },
  },
  qga: {
    name: 'guest agent',
    socket: 'guest agent socket',
    link: 'guest agent socket',
    codes: { connect: 'E_QGA_CONNECT', timeout: 'E_QGA_TIMEOUT', disconnected: 'E_QGA_DISCONNECTED', execute: 'E_QGA_EXECUTE' },
    connectHint: 'check that QEMU is running with -chardev socket,path=<this path>,server=on,wait=off and a virtserialport named org.qemu.guest_agent.0',
    timeoutHint: 'the guest may be hung or very busy; the next request re-synchronises with the agent first',
    timeout: (socketPath, operation, timeoutMs) => `the guest agent on ${socketPath} did not finish ${operation} within ${timeoutMs} ms`,
    notReady: (socketPath, deadlineMs, attempts, reason) => `guest agent socket ${socketPath} was not ready within ${deadlineMs} ms (last: ${reason}) after ${attempts} attempts`,
    executeHint: (errorClass, desc) =>
      errorClass === 'CommandNotFound' || /disabled/i.test(desc)
        ? 'the guest agent does not allow this command: check its version and its --allow-rpcs / --block-rpcs settings in the guest image'
        : 'the reason above comes from the guest; the guest agent logs more in the guest (journalctl -u qemu-guest-agent)',
  },
};

/** The protocol as log lines name it: "QMP", "guest agent". */
export function channelName(channel: Channel): string {
  return WORDING[channel].name;
}

/** The socket as messages name it: "QMP socket", "guest agent socket". */
export function socketName(channel: Channel): string {
  return WORDING[channel].socket;
}
