import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../../adapters/support/project-root.js';
import { diffTraces } from '../../../adapters/trace/diff.js';
import { readTraceFile } from '../../../adapters/trace/file.js';
import type { TraceRecord } from '../../../adapters/trace/record.js';
import { startBounds } from '../../../bin/commands/start.js';
import { compareMessage } from '../../../bin/inspector/compare.js';
import { inspectorModel } from '../../../bin/inspector/model.js';
import { recordedEnd } from '../../../bin/inspector/recorded-end.js';
import { defaultSpec } from '../../../adapters/spec/vm.js';

const runs = join(projectRoot(), 'test', 'traces', 'runs');
const model = inspectorModel({ kind: 'start', bounds: startBounds(defaultSpec()) });
const read = async (name: string): Promise<{ file: string; entries: TraceRecord[] }> => {
  const file = join(runs, `${name}.jsonl`);
  return { file, entries: await readTraceFile(file) };
};
const edgeOf = (id: string) => model.machines.flatMap((machine) => machine.edges).find((edge) => edge.id === id);

describe('the comparison of two recorded runs (warmvm inspect A B)', () => {
  it("carries trace diff's rows and summary, each run's ending, and the edges each run took", async () => {
    const a = await read('resume');
    const b = await read('corrupt-snapshot-fallback');
    const message = compareMessage(model, a, b);
    const diff = diffTraces(a.entries, b.entries);
    expect(message.rows).toEqual(diff.rows);
    expect(message.summary).toEqual(diff.summary);
    expect(message.a).toMatchObject({ file: a.file, totalMs: diff.a.totalMs, states: diff.a.states, end: { outcome: 'healthy' } });
    expect(message.a.end.fallbackReason).toBeUndefined();
    expect(message.b.end).toMatchObject({ outcome: 'healthy', fallbackReason: expect.stringMatching(/^resume\.preparing: E_SNAPSHOT_CORRUPT /) });
    // The fallback edge out of start.resume: taken in B only.
    const fallbacks = (taken: string[]) => taken.filter((id) => edgeOf(id)?.kind === 'fallback');
    expect(fallbacks(message.a.taken)).toEqual([]);
    expect(fallbacks(message.b.taken).length).toBeGreaterThanOrEqual(1);
    expect(fallbacks(message.b.taken).every((id) => edgeOf(id)?.from === 'start.resume')).toBe(true);
    // Both reached running from a resume.
    const intoRunning = (taken: string[]) => taken.filter((id) => edgeOf(id)?.from === 'start.resume' && edgeOf(id)?.to === 'start.running');
    expect(intoRunning(message.a.taken).length).toBeGreaterThanOrEqual(1);
    expect(intoRunning(message.b.taken)).toEqual(intoRunning(message.a.taken));
  });

  it('says how a recorded run ended: healthy, failed with its event, cut off', async () => {
    const resume = await read('resume');
    expect(recordedEnd(resume.entries)).toEqual({ outcome: 'healthy', summary: 'healthy in 1.18 s' });
    const interrupted = await read('ctrl-c-cold-boot');
    expect(recordedEnd(interrupted.entries).outcome).not.toBe('healthy');
    expect(recordedEnd(resume.entries.slice(0, 5))).toMatchObject({ outcome: 'recorded', summary: expect.stringContaining('the trace ends in start.') });
  });
});
