import type { CompareMessage, ComparedRun, InspectorModel } from '../../adapters/inspector/protocol.js';
import { takenEdges } from '../../adapters/inspector/taken-edges.js';
import { diffTraces } from '../../adapters/trace/diff.js';
import type { TraceRecord } from '../../adapters/trace/record.js';
import { recordedEnd } from './recorded-end.js';

/** What `warmvm inspect A B` shows: the diff of `trace diff A B`, and each run's ending and edges taken on `model`. */
export function compareMessage(model: InspectorModel, a: { file: string; entries: TraceRecord[] }, b: { file: string; entries: TraceRecord[] }): CompareMessage {
  const diff = diffTraces(a.entries, b.entries);
  const edges = model.machines.flatMap((machine) => machine.edges);
  const run = (side: typeof a, summary: typeof diff.a): ComparedRun => ({
    file: side.file,
    ...summary,
    end: recordedEnd(side.entries),
    taken: takenEdges(edges, side.entries),
  });
  return {
    kind: 'compare',
    title: `warmvm inspect: A ${a.file} against B ${b.file}`,
    model,
    a: run(a, diff.a),
    b: run(b, diff.b),
    rows: diff.rows,
    summary: diff.summary,
  };
}
