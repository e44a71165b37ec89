import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waterfallRows, type WaterfallState } from '../../../adapters/inspector/waterfall-rows.js';
import { projectRoot } from '../../../adapters/support/project-root.js';
import { readTraceFile } from '../../../adapters/trace/file.js';

const runs = join(projectRoot(), 'test', 'traces', 'runs');
/** What the page knows of the states these runs pass through: which invoke a machine, which end one. */
const states: Record<string, WaterfallState> = {
  'start.resume': { invokes: 'resume' },
  'start.coldBoot': { invokes: 'coldBoot' },
  'start.capture': { invokes: 'capture' },
  'start.running': { final: true },
  'resume.healthy': { final: true },
  'resume.failed': { final: true },
  'resume.rotating': { boundMs: 30_000 },
  'coldBoot.ready': { final: true },
  'capture.captured': { final: true },
};
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

describe('a trace as waterfall rows', () => {
  it("a resume: the root's bars cover the run end to end, the resume's states under start.resume", async () => {
    const entries = await readTraceFile(join(runs, 'resume.jsonl'));
    const rows = waterfallRows(entries, states);
    expect(rows).toHaveLength(entries.length);
    const top = rows.filter((row) => row.depth === 0);
    expect(sum(top.map((row) => row.end - row.start))).toBe((entries.at(-1)?.at ?? 0) - (entries[0]?.at ?? 0));
    // Each machine's bars follow one another with no gap.
    for (let i = 1; i < top.length; i += 1) expect(top[i]?.start).toBe(top[i - 1]?.end);
    const parent = rows.findIndex((row) => row.state === 'start.resume');
    const after = rows.slice(parent + 1);
    const children = after.slice(
      0,
      after.findIndex((row) => row.depth === 0),
    );
    expect(children.map((row) => row.state)).toContain('resume.rotating');
    expect(children.every((row) => row.machine === 'resume')).toBe(true);
    expect(rows[parent + children.length + 1]?.state).toBe('start.running');
    const resume = rows[parent];
    for (const child of children) {
      expect(child.start).toBeGreaterThanOrEqual(resume?.start ?? 0);
      expect(child.end).toBeLessThanOrEqual(resume?.end ?? 0);
    }
    expect(children.find((row) => row.state === 'resume.rotating')?.boundMs).toBe(30_000);
    expect(rows.at(-1)).toMatchObject({ state: 'start.running', final: true, open: false });
    expect(rows.every((row) => !row.open)).toBe(true);
  });

  it('a fallback: the failed resume, the cold boot, the capture and the second resume, each under its own state', async () => {
    const rows = waterfallRows(await readTraceFile(join(runs, 'corrupt-snapshot-fallback.jsonl')), states);
    const top = rows.filter((row) => row.depth === 0).map((row) => row.state);
    expect(top.slice(5)).toEqual(['start.resume', 'start.settingAside', 'start.coldBoot', 'start.capture', 'start.resume', 'start.running']);
    const under = (state: string, nth: number) => {
      const index = rows.map((row, i) => (row.state === state && row.depth === 0 ? i : -1)).filter((i) => i >= 0)[nth] as number;
      const out = [];
      for (let i = index + 1; i < rows.length && (rows[i]?.depth ?? 0) > 0; i += 1) out.push(rows[i]?.state);
      return out;
    };
    expect(under('start.resume', 0)).toEqual(['resume.preparing', 'resume.stopping', 'resume.failed']);
    expect(under('start.coldBoot', 0).at(-1)).toBe('coldBoot.ready');
    expect(under('start.capture', 0).at(-1)).toBe('capture.captured');
    expect(under('start.resume', 1).at(-1)).toBe('resume.healthy');
  });

  it('a run still going: the active state and the state that invoked its machine end now', () => {
    const rows = waterfallRows(
      [
        { at: 0, machine: 'start', state: 'start.resume', summary: 'init' },
        { at: 10, machine: 'resume', state: 'resume.preparing' },
        { at: 40, machine: 'resume', state: 'resume.rotating', summary: 'done' },
      ],
      states,
      1_000,
    );
    expect(rows.map((row) => [row.state, row.depth, row.start, row.end, row.open])).toEqual([
      ['start.resume', 0, 0, 1_000, true],
      ['resume.preparing', 1, 10, 40, false],
      ['resume.rotating', 1, 40, 1_000, true],
    ]);
    expect(rows[2]?.summary).toBe('done');
    expect(waterfallRows([], states, 5)).toEqual([]);
  });

  it('runs as the page runs it: from its source text alone', () => {
    const rebuilt = new Function(`return (${waterfallRows.toString()});`)() as typeof waterfallRows;
    const entries = [
      { at: 0, machine: 'start', state: 'start.resume' },
      { at: 5, machine: 'resume', state: 'resume.healthy' },
      { at: 7, machine: 'start', state: 'start.running' },
    ];
    expect(rebuilt(entries, states)).toEqual(waterfallRows(entries, states));
    expect(rebuilt(entries.slice(0, 2), states, 9)).toEqual(waterfallRows(entries.slice(0, 2), states, 9));
  });
});
