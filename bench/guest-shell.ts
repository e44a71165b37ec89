import { QgaClient } from '../adapters/qemu/protocol/qga-client.js';

/** Runs a shell script in one guest and returns its stdout; throws if the script fails. */
export type GuestShell = (script: string, timeoutMs: number) => Promise<string>;

/**
 * A shell in the guest whose agent listens on `socket`, one agent connection per script; `label`
 * (e.g. build/instance, where a bench runs several) prefixes its errors. Long bounds throughout,
 * since a busy TCG vCPU answers slowly.
 */
export function guestShell(socket: string, label?: string): GuestShell {
  return async (script, timeoutMs) => {
    const qga = await QgaClient.connectWhenReady(socket, { deadlineMs: 120_000, attemptTimeoutMs: 5_000 });
    try {
      const result = await qga.exec('/bin/sh', ['-c', script], { timeoutMs, pollIntervalMs: 2_000 });
      if (result.exitCode !== 0) {
        throw new Error(`${label === undefined ? '' : `${label}: `}guest script exited ${result.exitCode ?? `on signal ${result.signal}`}: ${result.stderr.toString()}`);
      }
      return result.stdout.toString();
    } finally {
      await qga.close();
    }
  };
}
