import type { DiffRow, TraceDiff } from '../trace/diff.js';
import type { Exchange, TraceRecord } from '../trace/record.js';
import type { PathStep } from '../trace/run-path.js';

/** What the inspector page draws: the machines, their states and bounds. No run data. */
export interface InspectorModel {
  root: string;
  machines: ModelMachine[];
}

/** One machine of the model: its top-level states, in order, and its transitions as edges. */
export interface ModelMachine {
  id: string;
  states: ModelState[];
  edges: ModelEdge[];
}

/**
 * What a transition is for: the actor's answer (`done`), its error, its bound passing, Ctrl-C, a
 * transient step (`always`), or the fallback to a cold boot after the fast path failed.
 */
export type EdgeKind = 'done' | 'error' | 'bound' | 'cancel' | 'always' | 'fallback' | 'event';

/** One transition drawn as an arrow from one state to another, labelled with its event. */
export interface ModelEdge {
  id: string;
  from: string;
  to: string;
  kind: EdgeKind;
  label: string;
}

/** One state of a machine: its node id (`resume.incoming`), its name, its bound. */
export interface ModelState {
  id: string;
  name: string;
  final: boolean;
  /** The state the machine starts in. */
  initial?: boolean;
  /** Entered and left in one step (`always`): never the active state. */
  transient: boolean;
  boundMs?: number;
  /** The child machine this state runs, drawn inside it. */
  invokes?: string;
  warning?: string;
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
  | { kind: 'entry'; entry: TraceRecord; summary: string }
  | { kind: 'exchange'; exchange: Exchange }
  | { kind: 'end'; end: RunEnd };

/** One of two compared runs: its trace file, its time, the way it went, how it ended, the edges it took. */
export interface ComparedRun {
  file: string;
  totalMs: number;
  states: number;
  path: PathStep[];
  end: RunEnd;
  /** The model's edge ids this run took (see takenEdges). */
  taken: string[];
}

/**
 * What the comparison page draws, all of it at once: the machines, each run, and the diff of
 * `warmvm trace diff A B` (its rows state by state, its summary). Trace data only: no secrets.
 */
export interface CompareMessage {
  kind: 'compare';
  title: string;
  model: InspectorModel;
  a: ComparedRun;
  b: ComparedRun;
  rows: DiffRow[];
  summary: TraceDiff['summary'];
}
