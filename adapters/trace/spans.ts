import { createHash } from 'node:crypto';
import { isSecretKey, REDACTED, redact, redactedJson, truncate } from '../support/redact.js';
import { describeError, describeEvent } from './event.js';
import type { Exchange, TraceRecord } from './record.js';

/**
 * A trace as a tree of spans, the shape OpenTelemetry wants, with no OpenTelemetry types: one span
 * per state entered, nested by machine under one root span for the run. Pure: the OTLP file and
 * the OTLP/HTTP send both turn these into the SDK's spans (adapters/otel/).
 */

/** An attribute value as OTLP carries one. */
export type SpanValue = string | number | boolean;

export interface SpanEventRecord {
  name: string;
  /** Unix milliseconds. */
  timeMs: number;
  attributes: Record<string, SpanValue>;
}

export interface TraceSpan {
  /** 16 hex digits. */
  spanId: string;
  /** Undefined for the run's root span. */
  parentSpanId: string | undefined;
  name: string;
  /** Unix milliseconds. */
  startMs: number;
  endMs: number;
  attributes: Record<string, SpanValue>;
  events: SpanEventRecord[];
  /** `error` with its message for a failed state; `unset` otherwise, as OTel leaves a span that did not fail. */
  status: { code: 'unset' } | { code: 'error'; message: string };
}

export interface TraceSpans {
  /** 32 hex digits. */
  traceId: string;
  /** The root span first, then one per state entry in trace order. */
  spans: TraceSpan[];
}

export interface TraceSpanOptions {
  /** The instance the trace belongs to, for the root span. */
  instance?: string | undefined;
  /** The run's start in unix ms, for a trace whose lines carry no wall time `t`. Default 0. */
  epochMs?: number;
}

const MAX_TEXT = 1000;

/**
 * The spans of one run. A state's span starts at its entry and ends at the next entry of its
 * machine; a child machine's last state ends with the parent state that invoked it (so a child
 * never outlasts its parent); what is still open ends with the run (its last line's `at`).
 * The event that ended a state is a span event at its end; a state left by an error, a bound or
 * Ctrl-C, a child that failed, or a `.failed` state has status ERROR. Each exchange is an event of
 * the deepest state open when it happened: by its place among the lines when known (times are whole
 * milliseconds, an exchange and the entry it caused often share one), else by its time.
 *
 * Ids are derived from the trace's state lines (sha256), so exporting the same trace twice, or
 * sending it at the end of `start` and exporting it later, gives the same ids: a backend sees one
 * trace, not two.
 */
export function traceSpans(entries: readonly TraceRecord[], exchanges: readonly (Exchange & { entriesBefore?: number })[], options: TraceSpanOptions = {}): TraceSpans {
  const traceId = digest(entries.map((entry) => JSON.stringify(entry)).join('\n')).slice(0, 32);
  const first = entries[0];
  const firstWall = first?.t === undefined ? Number.NaN : Date.parse(first.t);
  const epochMs = first !== undefined && Number.isFinite(firstWall) ? firstWall - first.at : (options.epochMs ?? 0);
  const runEndAt = Math.max(0, ...entries.map((entry) => entry.at), ...exchanges.map((exchange) => exchange.at));

  const rootMachine = first?.machine ?? 'run';
  const root: TraceSpan = {
    spanId: digest(`${traceId}/root`).slice(0, 16),
    parentSpanId: undefined,
    name: `warmvm ${rootMachine}`,
    startMs: epochMs,
    endMs: epochMs + runEndAt,
    attributes: {},
    events: [],
    status: { code: 'unset' },
  };

  interface Open {
    machine: string;
    span: TraceSpan;
  }
  const states: { span: TraceSpan; depth: number }[] = [];
  // The deepest state open once the first k entries were read: where an exchange placed there happened.
  const openAfter: TraceSpan[] = [root];
  // The machines now running, outermost first, each with the span of the state it is in.
  const stack: Open[] = [];
  const close = (open: Open, at: number) => {
    open.span.endMs = epochMs + at;
  };

  for (const [index, entry] of entries.entries()) {
    const found = stack.findLastIndex((open) => open.machine === entry.machine);
    let parent: TraceSpan;
    let depth: number;
    if (found >= 0) {
      // The machines above it are over: their last states end here, with the state that invoked them.
      for (const open of stack.splice(found + 1)) {
        close(open, entry.at);
        // A child's `.failed` state learns why from its result, which only the parent's entry carries.
        const why = failureMessage(entry.event);
        if (open.span.status.code === 'error' && why !== undefined) open.span.status = { code: 'error', message: why };
      }
      const left = stack[found] as Open;
      close(left, entry.at);
      if (entry.from === undefined || entry.from === left.span.attributes['warmvm.state']) endedBy(left.span, entry, epochMs);
      parent = found > 0 ? (stack[found - 1] as Open).span : root;
      depth = found + 1;
      stack.length = found;
    } else {
      // A machine seen for the first time was invoked by the state its parent just entered.
      parent = stack.at(-1)?.span ?? root;
      depth = stack.length + 1;
    }
    const span: TraceSpan = {
      spanId: digest(`${traceId}/${index}/${entry.state}`).slice(0, 16),
      parentSpanId: parent.spanId,
      name: entry.state,
      startMs: epochMs + entry.at,
      endMs: epochMs + runEndAt,
      attributes: attributes({
        'warmvm.machine': entry.machine,
        'warmvm.state': entry.state,
        'warmvm.at_ms': entry.at,
        ...(entry.warning === undefined ? {} : { 'warmvm.warning': entry.warning }),
      }),
      events: [],
      status: { code: 'unset' },
    };
    if (/\.failed$/.test(entry.state)) span.status = { code: 'error', message: failureMessage(entry.event) ?? `${entry.state} entered` };
    stack.push({ machine: entry.machine, span });
    states.push({ span, depth });
    openAfter.push(span);
  }

  for (const exchange of exchanges) {
    const placed = exchange.entriesBefore === undefined ? undefined : openAfter[Math.min(exchange.entriesBefore, entries.length)];
    (placed ?? spanAt(states, exchange.at + epochMs, root.endMs, root)).events.push(exchangeEvent(exchange, epochMs));
  }
  // In time order, the event that ended the state last of those in its millisecond.
  const isEnding = (event: SpanEventRecord) => ('warmvm.event.type' in event.attributes ? 1 : 0);
  for (const { span } of states) span.events.sort((a, b) => a.timeMs - b.timeMs || isEnding(a) - isEnding(b));

  const rootStates = entries.filter((entry) => entry.machine === rootMachine);
  const last = rootStates.at(-1);
  const leaf = last === undefined ? 'empty' : last.state.slice(last.state.lastIndexOf('.') + 1);
  const failure = last === undefined ? undefined : failureOf(last.event);
  const outcome = leaf === 'running' || leaf === 'healthy' ? 'healthy' : failure?.code === 'E_INTERRUPTED' ? 'interrupted' : leaf;
  // The path taken: the machines the root invoked, in order (`resume → coldBoot` for a fallback).
  const path = entries.filter((entry, index) => entry.machine !== rootMachine && entries[index - 1]?.machine === rootMachine).map((entry) => entry.machine);
  root.attributes = attributes({
    'warmvm.machine': rootMachine,
    ...(options.instance === undefined ? {} : { 'warmvm.instance': options.instance }),
    'warmvm.path': path.join(' → '),
    'warmvm.outcome': outcome,
    'warmvm.final_state': last?.state ?? '',
    'warmvm.states': entries.length,
    ...(failure === undefined ? {} : { 'error.type': failure.code ?? 'failed', 'warmvm.failure.state': failure.state ?? '' }),
  });
  if (last !== undefined && leaf === 'failed') root.status = { code: 'error', message: failureMessage(last.event) ?? `${last.state} entered` };
  return { traceId, spans: [root, ...states.map((state) => state.span)] };
}

/** The entry's event ended `span`'s state: a span event at its end, and status ERROR if the state failed. */
function endedBy(span: TraceSpan, entry: TraceRecord, epochMs: number): void {
  // Redacted before it is summarized too: the summary quotes the output's fields.
  const event = redact(entry.event) as Record<string, unknown>;
  const type = typeof event.type === 'string' ? event.type : '(no type)';
  span.events.push({
    name: type,
    timeMs: epochMs + entry.at,
    attributes: attributes({
      'warmvm.event.type': type,
      'warmvm.event.summary': describeEvent(event),
      ...('output' in event ? { 'warmvm.event.output': event.output } : {}),
      ...('error' in event ? { 'warmvm.event.error': event.error } : {}),
    }),
  });
  if (entry.ms !== undefined) span.attributes['warmvm.ms'] = entry.ms;
  const problem = stateProblem(event);
  if (problem !== undefined) {
    span.status = { code: 'error', message: problem.message };
    if (problem.code !== undefined) span.attributes['error.type'] = problem.code;
  }
}

/** Why the state an event ended failed, if it did: an error, a bound, Ctrl-C, a child that failed. */
function stateProblem(event: Record<string, unknown>): { code: string | undefined; message: string } | undefined {
  const type = typeof event.type === 'string' ? event.type : '';
  if (type.startsWith('xstate.error.')) {
    const code = (event.error as { code?: unknown } | undefined)?.code;
    return { code: typeof code === 'string' ? code : undefined, message: describeError(event.error) ?? type };
  }
  if (type.startsWith('xstate.after.')) return { code: 'E_BOUND', message: describeEvent(event) };
  if (type === 'CANCEL') return { code: 'E_INTERRUPTED', message: 'interrupted (Ctrl-C)' };
  const failure = failureOf(event);
  if (failure !== undefined) return { code: failure.code, message: failureMessage(event) ?? 'failed' };
  return undefined;
}

/** A child machine's failure in an event's output: `{outcome: 'failed', failure: {state, code, message}}`. */
function failureOf(event: Record<string, unknown>): { state?: string; code?: string; message?: string } | undefined {
  const output = event.output as { outcome?: unknown; failure?: unknown } | undefined;
  if (typeof output !== 'object' || output === null || output.outcome !== 'failed') return undefined;
  const failure = output.failure as Record<string, unknown> | undefined;
  if (typeof failure !== 'object' || failure === null) return {};
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  return { state: text(failure.state), code: text(failure.code), message: text(failure.message) };
}

function failureMessage(event: Record<string, unknown>): string | undefined {
  const failure = failureOf(event);
  if (failure === undefined) return undefined;
  return truncate([failure.code, failure.message].filter((part) => part !== undefined).join(' '), MAX_TEXT) || 'failed';
}

/** The deepest state span open at `timeMs` (the latest entered of those as deep); the root if none. */
function spanAt(states: readonly { span: TraceSpan; depth: number }[], timeMs: number, runEndMs: number, root: TraceSpan): TraceSpan {
  let best: { span: TraceSpan; depth: number } | undefined;
  for (const state of states) {
    const { startMs, endMs } = state.span;
    const open = startMs <= timeMs && (timeMs < endMs || (timeMs === endMs && endMs === runEndMs));
    if (open && (best === undefined || state.depth >= best.depth)) best = state;
  }
  return best?.span ?? root;
}

function exchangeEvent(exchange: Exchange, epochMs: number): SpanEventRecord {
  return {
    name: `${exchange.channel} ${truncate(exchange.what, 100)}`,
    timeMs: epochMs + exchange.at,
    attributes: attributes({
      'warmvm.exchange.channel': exchange.channel,
      'warmvm.exchange.what': exchange.what,
      'warmvm.exchange.ok': exchange.ok,
      'warmvm.exchange.summary': exchange.summary,
      ...(exchange.ms === undefined ? {} : { 'warmvm.exchange.ms': exchange.ms }),
    }),
  };
}

/**
 * Attribute values through redact.ts's rules, as everything written: a secret-named key's value is
 * replaced, an object becomes redacted JSON text, a long text is cut. The trace is secret-free
 * already; this holds the rule should a field ever carry one.
 */
function attributes(values: Record<string, unknown>): Record<string, SpanValue> {
  const out: Record<string, SpanValue> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const name = key.slice(key.lastIndexOf('.') + 1);
    if (isSecretKey(name)) out[key] = REDACTED;
    else if (typeof value === 'number' || typeof value === 'boolean') out[key] = value;
    else if (typeof value === 'string') out[key] = truncate(value, MAX_TEXT);
    else out[key] = redactedJson(value, MAX_TEXT);
  }
  return out;
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
