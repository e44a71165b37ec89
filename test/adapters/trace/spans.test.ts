import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../../adapters/support/project-root.js';
import { placeExchangeLines } from '../../../adapters/trace/exchanges.js';
import { parseTraceLines } from '../../../adapters/trace/file.js';
import type { TraceRecord } from '../../../adapters/trace/record.js';
import { traceSpans, type TraceSpan, type TraceSpans } from '../../../adapters/trace/spans.js';

// The span tree of recorded real runs (test/traces/runs/): what `trace export --otlp` writes and
// what `start` sends.
const runs = join(projectRoot(), 'test', 'traces', 'runs');
const RUNS = ['resume', 'fallback-rotate-failed', 'first-start', 'capture-kept', 'unhealthy', 'ctrl-c-cold-boot', 'fallback-rotate-failed-twice'];

interface Run {
  entries: TraceRecord[];
  tree: TraceSpans;
  epochMs: number;
  byName: (name: string) => TraceSpan;
  parentOf: (span: TraceSpan) => TraceSpan | undefined;
}

async function load(name: string): Promise<Run> {
  const text = await readFile(join(runs, `${name}.jsonl`), 'utf8');
  const entries = parseTraceLines(text, name);
  const tree = traceSpans(entries, placeExchangeLines(text), { instance: 'web' });
  const first = entries[0] as TraceRecord;
  const epochMs = Date.parse(first.t as string) - first.at;
  const byName = (state: string): TraceSpan => {
    const found = tree.spans.filter((span) => span.name === state);
    expect(found, state).toHaveLength(1);
    return found[0] as TraceSpan;
  };
  const parentOf = (span: TraceSpan) => tree.spans.find((other) => other.spanId === span.parentSpanId);
  return { entries, tree, epochMs, byName, parentOf };
}

const rootOf = (run: Run): TraceSpan => run.tree.spans[0] as TraceSpan;

describe('traceSpans', () => {
  it.each(RUNS)('%s: one span per state under one root, each inside its parent, ids unique and stable', async (name) => {
    const run = await load(name);
    expect(run.tree.spans).toHaveLength(run.entries.length + 1);
    expect(run.tree.traceId).toMatch(/^[0-9a-f]{32}$/);
    const root = rootOf(run);
    expect(root.parentSpanId).toBeUndefined();
    expect(root.name).toBe('warmvm start');
    expect(run.tree.spans.slice(1).map((span) => span.name)).toEqual(run.entries.map((entry) => entry.state));
    const ids = run.tree.spans.map((span) => span.spanId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const span of run.tree.spans) {
      expect(span.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(span.endMs).toBeGreaterThanOrEqual(span.startMs);
      if (span === root) continue;
      const parent = run.parentOf(span);
      expect(parent, span.name).toBeDefined();
      expect(span.startMs).toBeGreaterThanOrEqual((parent as TraceSpan).startMs);
      expect(span.endMs).toBeLessThanOrEqual((parent as TraceSpan).endMs);
    }
    // The same trace, the same ids: a send at the end of start and a later export are one trace.
    const again = traceSpans(run.entries, [], {});
    expect(again.traceId).toBe(run.tree.traceId);
    expect(again.spans.map((span) => span.spanId)).toEqual(ids);
  });

  it('resume: the root says instance, path and outcome; resume.* are children of start.resume; times from the entries', async () => {
    const run = await load('resume');
    const root = rootOf(run);
    expect(root.attributes).toMatchObject({ 'warmvm.instance': 'web', 'warmvm.path': 'resume', 'warmvm.outcome': 'healthy', 'warmvm.final_state': 'start.running' });
    expect(root.status).toEqual({ code: 'unset' });
    expect(root.startMs).toBe(run.epochMs);
    expect(root.endMs).toBe(run.epochMs + 1182);

    const startResume = run.byName('start.resume');
    expect(run.parentOf(startResume)).toBe(root);
    for (const span of run.tree.spans.filter((candidate) => candidate.name.startsWith('resume.'))) expect(run.parentOf(span)).toBe(startResume);
    for (const span of run.tree.spans.filter((candidate) => candidate.name.startsWith('start.'))) expect(run.parentOf(span)).toBe(root);

    // From its entry to the next entry of its machine; the event that ended it at its end.
    const launching = run.byName('resume.launching');
    expect([launching.startMs - run.epochMs, launching.endMs - run.epochMs]).toEqual([58, 131]);
    expect(launching.attributes).toMatchObject({ 'warmvm.machine': 'resume', 'warmvm.state': 'resume.launching', 'warmvm.ms': 73 });
    expect(launching.events).toEqual([
      {
        name: 'xstate.done.actor.0.resume.launching',
        timeMs: run.epochMs + 131,
        attributes: {
          'warmvm.event.type': 'xstate.done.actor.0.resume.launching',
          'warmvm.event.summary': 'done resume.launching: pid 5713',
          'warmvm.event.output': '{"pid":5713}',
        },
      },
    ]);
    // A child's last state ends with the parent state that invoked it.
    expect(run.byName('resume.healthy').endMs).toBe(startResume.endMs);
    expect(startResume.endMs - run.epochMs).toBe(1182);
    expect(run.byName('resume.rotating').events[0]?.attributes['warmvm.event.output']).toBe('{"secrets":"[redacted]","exitCode":0}');
    expect(run.tree.spans.filter((span) => span.status.code === 'error')).toEqual([]);
  });

  it('a fallback: the failed state, its machine and the state that invoked it are ERROR with the message; the run is not', async () => {
    const run = await load('fallback-rotate-failed');
    const root = rootOf(run);
    expect(root.attributes).toMatchObject({ 'warmvm.path': 'resume → coldBoot', 'warmvm.outcome': 'healthy' });
    expect(root.status).toEqual({ code: 'unset' });
    const message = "E_ROTATE the guest's rotate command /usr/local/bin/rotate-secrets exited 127: rotate-secrets: applet not found";
    const rotating = run.byName('resume.rotating');
    expect(rotating.status).toEqual({ code: 'error', message });
    expect(rotating.attributes['error.type']).toBe('E_ROTATE');
    expect(rotating.events.map((event) => event.name)).toEqual(['xstate.error.actor.0.resume.rotating']);
    expect(rotating.events[0]?.attributes['warmvm.event.error']).toContain('applet not found');
    expect(run.byName('resume.failed').status).toEqual({ code: 'error', message });
    expect(run.byName('start.resume').status).toEqual({ code: 'error', message });
    expect(run.byName('resume.stopping').status).toEqual({ code: 'unset' });
    const startCold = run.byName('start.coldBoot');
    for (const span of run.tree.spans.filter((candidate) => candidate.name.startsWith('coldBoot.'))) expect(run.parentOf(span)).toBe(startCold);
    expect(startCold.status).toEqual({ code: 'unset' });
  });

  it('a first start: coldBoot, capture and resume each under the state that invoked it', async () => {
    const run = await load('first-start');
    expect(rootOf(run).attributes['warmvm.path']).toBe('coldBoot → capture → resume');
    for (const [machine, parent] of [
      ['coldBoot', 'start.coldBoot'],
      ['capture', 'start.capture'],
      ['resume', 'start.resume'],
    ] as const) {
      const invoking = run.byName(parent);
      const children = run.tree.spans.filter((span) => span.name.startsWith(`${machine}.`));
      expect(children.length).toBeGreaterThan(2);
      for (const child of children) expect(run.parentOf(child)).toBe(invoking);
    }
    const storing = run.byName('capture.storing');
    expect(storing.events[0]?.attributes['warmvm.event.summary']).toContain('done capture.storing');
  });

  it('exchanges are events of the state they happened in, by their line: a health check that ended probing is probing’s', async () => {
    const run = await load('capture-kept');
    const text = await readFile(join(runs, 'capture-kept.jsonl'), 'utf8');
    const exchangeEvents = run.tree.spans.flatMap((span) => span.events.filter((event) => 'warmvm.exchange.channel' in event.attributes));
    expect(exchangeEvents).toHaveLength(placeExchangeLines(text).length);
    const names = (state: string) => run.byName(state).events.map((event) => event.name);
    expect(names('coldBoot.booting')).toEqual(['qmp query-status', 'qmp event NIC_RX_FILTER_CHANGED', 'xstate.done.actor.0.coldBoot.booting']);
    // Both answers share their millisecond (4669) with coldBoot.ready's entry, whose line comes after.
    expect(names('coldBoot.probing')).toEqual(['health http://127.0.0.1:35617/health', 'health http://127.0.0.1:35617/health', 'xstate.done.actor.0.coldBoot.probing']);
    expect(names('coldBoot.ready')).toEqual([]);
    const [refused, answered] = run.byName('coldBoot.probing').events;
    expect(refused?.attributes).toEqual({
      'warmvm.exchange.channel': 'health',
      'warmvm.exchange.what': 'http://127.0.0.1:35617/health',
      'warmvm.exchange.ok': false,
      'warmvm.exchange.summary': 'no answer (ECONNRESET)',
    });
    expect(answered?.timeMs).toBe(run.epochMs + 4669);
    // The failed migration, continued from: the state it ended is ERROR, the run is not.
    expect(run.byName('capture.migrating').status.code).toBe('error');
    expect(names('capture.rotating').at(-2)).toBe('exec /usr/local/bin/rotate-secrets');
  });

  it('a bound that ran out, and a Ctrl-C: the state ERROR, the run ERROR and its outcome', async () => {
    const unhealthy = await load('unhealthy');
    const probing = unhealthy.byName('coldBoot.probing');
    expect(probing.status).toEqual({ code: 'error', message: 'after healthBound' });
    expect(probing.attributes['error.type']).toBe('E_BOUND');
    const root = rootOf(unhealthy);
    expect(root.status).toMatchObject({ code: 'error', message: expect.stringContaining('E_BOUND every health check answering did not happen within 3 s') });
    expect(root.attributes).toMatchObject({ 'warmvm.outcome': 'failed', 'error.type': 'E_BOUND', 'warmvm.failure.state': 'coldBoot.probing' });

    const interrupted = await load('ctrl-c-cold-boot');
    expect(interrupted.byName('coldBoot.launching').status).toEqual({ code: 'error', message: 'interrupted (Ctrl-C)' });
    expect(rootOf(interrupted).attributes['warmvm.outcome']).toBe('interrupted');
    expect(rootOf(interrupted).status.code).toBe('error');
  });

  it('runs every attribute through the redaction rules: a secret-named field never reaches a span', () => {
    const entries: TraceRecord[] = [
      { t: '2026-11-23T08:00:00.000Z', at: 1, machine: 'start', state: 'start.preflight', event: { type: 'xstate.init' } },
      {
        t: '2026-11-23T08:00:00.010Z',
        at: 10,
        machine: 'start',
        state: 'start.image',
        from: 'start.preflight',
        ms: 9,
        event: { type: 'xstate.done.actor.0.start.preflight', output: { token: 'hunter2', nested: { password: 'hunter3' } } },
      },
    ];
    const tree = traceSpans(entries, [{ at: 5, channel: 'qga', what: 'guest-exec', ok: true, summary: 'ok', entriesBefore: 1 }]);
    const text = JSON.stringify(tree);
    expect(text).not.toContain('hunter');
    expect(tree.spans[1]?.events.at(-1)?.attributes['warmvm.event.output']).toBe('{"token":"[redacted]","nested":{"password":"[redacted]"}}');
    expect(tree.spans[1]?.events[0]?.name).toBe('qga guest-exec');
  });
});
