import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { assign, createMachine, fromPromise, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { takenEdges } from '../../../adapters/inspector/taken-edges.js';
import { projectRoot } from '../../../adapters/support/project-root.js';
import { readTraceFile } from '../../../adapters/trace/file.js';
import { startBounds } from '../../../bin/commands/start.js';
import { machineGraph } from '../../../bin/inspector/graph.js';
import { inspectorModel } from '../../../bin/inspector/model.js';
import { defaultSpec } from '../../../adapters/spec/vm.js';

const runs = join(projectRoot(), 'test', 'traces', 'runs');
const model = inspectorModel({ kind: 'start', bounds: startBounds(defaultSpec()) });
const machineOf = (id: string) => {
  const machine = model.machines.find((m) => m.id === id);
  if (!machine) throw new Error(`no machine ${id}`);
  return machine;
};

describe('a machine as the inspector draws it (machine → graph)', () => {
  it('reads states, bounds and every kind of edge off the machine definition itself', () => {
    const machine = setup({
      actors: { work: fromPromise(async () => 1) },
      delays: { workBound: ({ context }: { context: { bounds: { workMs: number } } }) => context.bounds.workMs },
      guards: { good: () => true },
    }).createMachine({
      id: 'toy',
      initial: 'idle',
      context: { bounds: { workMs: 2_500 } },
      states: {
        idle: { always: { target: 'working' } },
        working: {
          invoke: { src: 'work', onDone: [{ guard: 'good', target: 'done' }, { target: 'failed' }], onError: { target: 'failed' } },
          after: { workBound: { target: 'failed' } },
          on: { CANCEL: { target: 'failed' }, NUDGE: { actions: assign({}) } },
        },
        done: { type: 'final' },
        failed: { type: 'final' },
      },
    });
    const graph = machineGraph(machine, { workMs: 7_000 });
    expect(graph.id).toBe('toy');
    expect(graph.states.map((state) => state.id)).toEqual(['toy.idle', 'toy.working', 'toy.done', 'toy.failed']);
    expect(graph.states[0]).toMatchObject({ initial: true, transient: true });
    expect(graph.states[1]?.boundMs).toBe(7_000);
    expect(graph.states[2]?.final).toBe(true);
    const edges = graph.edges.map(({ from, to, kind, label }) => `${from}->${to} ${kind} ${label}`).sort();
    // NUDGE has no target: it stays in its state, so no arrow.
    expect(edges).toEqual(
      [
        'toy.idle->toy.working always always',
        'toy.working->toy.done done done [good]',
        'toy.working->toy.failed done done',
        'toy.working->toy.failed error error',
        'toy.working->toy.failed bound after 7 s',
        'toy.working->toy.failed cancel Ctrl-C',
      ].sort(),
    );
  });

  it('draws a plain machine with no setup (createMachine) too', () => {
    const graph = machineGraph(createMachine({ id: 'bare', initial: 'a', states: { a: { on: { GO: 'b' }, after: { 1500: 'b' } }, b: {} } }), {});
    expect(graph.states.find((state) => state.id === 'bare.a')?.boundMs).toBe(1_500);
    expect(graph.edges.map((edge) => `${edge.kind} ${edge.label}`).sort()).toEqual(['bound after 1.5 s', 'event done']);
  });

  it('gives each bounded state of the resume machine its failure, bound and Ctrl-C edges, labelled with its bound', () => {
    const resume = machineOf('resume');
    // resume.stopping is the cleanup: Ctrl-C waits for it, so it has no Ctrl-C edge.
    const bounded = resume.states.filter((state) => state.boundMs !== undefined && state.id !== 'resume.stopping');
    expect(bounded.length).toBeGreaterThan(3);
    for (const state of bounded) {
      const out = resume.edges.filter((edge) => edge.from === state.id);
      expect(
        out.map((edge) => edge.kind),
        state.id,
      ).toEqual(expect.arrayContaining(['done', 'error', 'bound', 'cancel']));
      expect(out.filter((edge) => edge.kind !== 'done').map((edge) => edge.to)).toEqual(['resume.stopping', 'resume.stopping', 'resume.stopping']);
      expect(out.find((edge) => edge.kind === 'bound')?.label).toBe(`after ${(state.boundMs as number) / 1000} s`);
    }
    expect(resume.edges.filter((edge) => edge.from === 'resume.stopping').map((edge) => `${edge.to} ${edge.kind}`)).toEqual(
      expect.arrayContaining(['resume.failed done', 'resume.failed bound']),
    );
    expect(resume.states.find((state) => state.initial)?.id).toBe('resume.preparing');
  });

  it("marks the start machine's fallback edges: resume and capture to a cold boot, a damaged snapshot set aside", () => {
    const fallbacks = machineOf('start')
      .edges.filter((edge) => edge.kind === 'fallback')
      .map((edge) => `${edge.from}->${edge.to}`)
      .sort();
    expect(fallbacks).toEqual(['start.capture->start.coldBoot', 'start.resume->start.coldBoot', 'start.resume->start.settingAside']);
    expect(machineOf('start').states.find((state) => state.id === 'start.resume')?.invokes).toBe('resume');
  });

  it('has an edge for every transition of every recorded run', async () => {
    const edges = model.machines.flatMap((machine) => machine.edges);
    for (const file of (await readdir(runs)).filter((name) => name.endsWith('.jsonl') && !name.startsWith('stop'))) {
      const entries = await readTraceFile(join(runs, file));
      for (const entry of entries.filter((e) => e.from)) {
        expect(takenEdges(edges, [entry]), `${file}: ${entry.from} → ${entry.state}`).not.toEqual([]);
      }
    }
  });
});

describe('the edges a run took', () => {
  const start = machineOf('start');
  const all = model.machines.flatMap((machine) => machine.edges);
  const kindsTaken = (taken: string[]) => all.filter((edge) => taken.includes(edge.id)).map((edge) => `${edge.from}->${edge.to} ${edge.kind}`);

  it('a resume takes no fallback edge; a corrupt snapshot takes the one that sets it aside', async () => {
    const resume = kindsTaken(takenEdges(all, await readTraceFile(join(runs, 'resume.jsonl'))));
    expect(resume).toContain('start.resume->start.running done');
    expect(resume.filter((edge) => edge.endsWith('fallback'))).toEqual([]);
    const fallback = kindsTaken(takenEdges(all, await readTraceFile(join(runs, 'corrupt-snapshot-fallback.jsonl'))));
    expect(fallback).toContain('start.resume->start.settingAside fallback');
    expect(fallback).toContain('resume.preparing->resume.stopping error');
    expect(start.edges.length).toBeGreaterThan(10);
  });

  it('tells a bound passing from an error between the same two states by the event', () => {
    const entry = { machine: 'resume', state: 'resume.stopping', from: 'resume.incoming' };
    const kinds = (type: string) => kindsTaken(takenEdges(all, [{ ...entry, event: { type } }])).map((edge) => edge.split(' ')[1]);
    expect(kinds('xstate.after.incomingBound.resume.incoming')).toEqual(['bound']);
    expect(kinds('xstate.error.actor.0.resume.incoming')).toEqual(['error']);
    expect(kinds('CANCEL')).toEqual(['cancel']);
  });
});
