import type { TraceEntry } from '../trace/recorder.js';

/** What the inspector page draws: the machines, their states and bounds. No run data. */
export interface InspectorModel {
  root: string;
  machines: ModelMachine[];
}
export interface ModelMachine {
  id: string;
  states: ModelState[];
}
export interface ModelState {
  id: string;
  name: string;
  final: boolean;
  /** Entered and left in one step (`always`): never the active state. */
  transient: boolean;
  boundMs?: number;
  /** The child machine this state runs, drawn inside it. */
  invokes?: string;
  warning?: string;
}

/** A last exchange with QEMU, the guest agent or the health checks: already secret-free. */
export interface Exchange {
  at: number;
  channel: 'qmp' | 'qga' | 'exec' | 'health';
  /** The command (`migrate-incoming`), the guest program, or the URL. */
  what: string;
  ok: boolean;
  /** The reply, the exit and stderr, or the HTTP status, in a few words. */
  summary: string;
  ms?: number;
}

/** How the run ended, once it has. */
export interface RunEnd {
  outcome: 'healthy' | 'failed' | 'stopped' | 'recorded';
  summary: string;
  fallbackReason?: string;
}

/** Everything the server sends the page, in order: the first message carries the model. */
export type InspectorMessage =
  | { kind: 'hello'; model: InspectorModel; title: string; live: boolean; startedAt: number; now: number }
  | { kind: 'entry'; entry: TraceEntry; summary: string }
  | { kind: 'exchange'; exchange: Exchange }
  | { kind: 'end'; end: RunEnd };
