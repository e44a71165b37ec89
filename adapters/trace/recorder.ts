import { appendFileSync } from 'node:fs';
import type { InspectionEvent } from 'xstate';
import { redact } from '../support/redact.js';
import type { Exchange, ExchangeLine, TraceEntry } from './record.js';

/**
 * Records every state every machine enters, from XState's inspection stream, into memory and
 * (when given a file) into trace.jsonl as it happens, so a killed run still leaves its trace.
 */
export class TraceRecorder {
  readonly entries: TraceEntry[] = [];
  private readonly last = new Map<string, { state: string; at: number }>();
  private readonly started = Date.now();
  private readonly listeners: ((entry: TraceEntry) => void)[] = [];

  constructor(private readonly file: string | undefined) {}

  /** Pass as `inspect` to createActor. */
  readonly inspect = (inspection: InspectionEvent): void => {
    if (inspection.type !== '@xstate.snapshot' && inspection.type !== '@xstate.microstep') return;
    const snapshot = inspection.snapshot as { value?: unknown; machine?: { id?: string }; getMeta?: () => Record<string, { warning?: unknown } | undefined> };
    if (snapshot.value === undefined || !snapshot.machine?.id) return;
    const machine = snapshot.machine.id;
    const actorKey = inspection.actorRef.sessionId;
    const state = [machine, ...statePaths(snapshot.value)].join('.');
    const previous = this.last.get(actorKey);
    if (previous?.state === state) return;
    const now = Date.now();
    this.last.set(actorKey, { state, at: now });
    const warning = warningOf(snapshot.getMeta?.() ?? {}, state);
    this.record({
      t: new Date(now).toISOString(),
      at: now - this.started,
      machine,
      state,
      from: previous?.state,
      ms: previous ? now - previous.at : undefined,
      event: summarizeEvent(inspection.event),
      ...(warning ? { warning } : {}),
    });
  };

  /**
   * An exchange with QEMU, the agent or the health checks, as a line without a `state` (readers
   * of states skip it). A poll that says the same as the last one of its channel is not repeated.
   */
  exchange(exchange: Exchange): void {
    const key = `${exchange.what}\u0000${exchange.summary}`;
    if (this.lastExchange.get(exchange.channel) === key) return;
    this.lastExchange.set(exchange.channel, key);
    if (!this.file) return;
    const line: ExchangeLine = { t: new Date(this.started + exchange.at).toISOString(), at: exchange.at, exchange };
    appendFileSync(this.file, JSON.stringify(line) + '\n');
  }

  private readonly lastExchange = new Map<string, string>();

  onEntry(listener: (entry: TraceEntry) => void): void {
    this.listeners.push(listener);
  }

  /** Milliseconds spent in each state that was left, by full state path. */
  durations(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const entry of this.entries) if (entry.from !== undefined && entry.ms !== undefined) out[entry.from] = (out[entry.from] ?? 0) + entry.ms;
    return out;
  }

  /** Epoch milliseconds the run began at: entries' `at` count from here. */
  get startedAt(): number {
    return this.started;
  }

  elapsedMs(): number {
    return Date.now() - this.started;
  }

  private record(entry: TraceEntry): void {
    this.entries.push(entry);
    if (this.file) appendFileSync(this.file, JSON.stringify(entry) + '\n');
    for (const listener of this.listeners) listener(entry);
  }
}

/** The warning of the state just entered: meta is keyed by state node id, `resume.unrotated`. */
function warningOf(meta: Record<string, { warning?: unknown } | undefined>, state: string): string | undefined {
  const warning = meta[state]?.warning;
  return typeof warning === 'string' ? warning : undefined;
}

/** `{a: {b: 'c'}}` → `a.b.c`; parallel regions are joined with `+`. */
function statePaths(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value !== 'object' || value === null) return [];
  const keys = Object.keys(value);
  if (keys.length === 1) {
    const key = keys[0] as string;
    return [key, ...statePaths((value as Record<string, unknown>)[key])];
  }
  return [keys.map((key) => [key, ...statePaths((value as Record<string, unknown>)[key])].join('.')).join('+')];
}

/** The event's type and the details a person debugging needs, with anything secret-named redacted. */
export function summarizeEvent(event: { type: string } & Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { type: event.type };
  if ('output' in event) out.output = redact(event.output, 0);
  if ('error' in event) {
    const error = event.error as { code?: unknown; message?: unknown } | undefined;
    out.error = error instanceof Error ? { code: (error as { code?: unknown }).code, message: error.message } : redact(error, 0);
  }
  return out;
}
