import type { Channel } from '../../adapters/qemu/protocol/channel.js';
import { CHANNEL_ERRORS } from '../../adapters/qemu/protocol/errors.js';
import type { Outcome } from './outcomes.js';

/**
 * How a protocol call ended, in a form that compares with toEqual: what the QMP and guest agent
 * race tests hold their clients' calls to. `P` names the channel's classes ("Qmp", "Qga").
 */
export type CallSummary<P extends 'Qmp' | 'Qga'> =
  | { outcome: 'returned'; value: unknown }
  | { outcome: `${P}ExecuteError`; command: string; errorClass: string; desc: string }
  | { outcome: `${P}TimeoutError`; operation: string }
  | { outcome: `${P}DisconnectedError`; operation: string | undefined; byPeer: boolean }
  | { outcome: 'pending' }
  | { outcome: 'other'; error: string };

const PREFIX = { qmp: 'Qmp', qga: 'Qga' } as const;

/** Summarises a tracked call; an error that is not the channel's execute, timeout or disconnected error is "other". */
export function summarizeCall<C extends Channel>(
  channel: C,
  outcome: Outcome | undefined,
  mapValue: (value: unknown) => unknown = (value) => value,
): CallSummary<(typeof PREFIX)[C]> {
  type Summary = CallSummary<(typeof PREFIX)[C]>;
  if (!outcome) return { outcome: 'pending' };
  if (outcome.kind === 'resolved') return { outcome: 'returned', value: mapValue(outcome.value) };
  const error = outcome.error;
  const prefix = PREFIX[channel];
  const classes = CHANNEL_ERRORS[channel];
  if (error instanceof classes.Execute) {
    return { outcome: `${prefix}ExecuteError`, command: error.command, errorClass: error.errorClass, desc: error.desc } as Summary;
  }
  if (error instanceof classes.Timeout) {
    return { outcome: `${prefix}TimeoutError`, operation: error.operation } as Summary;
  }
  if (error instanceof classes.Disconnected) {
    return { outcome: `${prefix}DisconnectedError`, operation: error.operation, byPeer: error.byPeer } as Summary;
  }
  return { outcome: 'other', error: String(error) };
}
