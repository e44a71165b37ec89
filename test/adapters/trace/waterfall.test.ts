import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../../adapters/support/project-root.js';
import { readTraceFile } from '../../../adapters/trace/file.js';
import type { TraceRecord } from '../../../adapters/trace/record.js';
import { formatRunPath, runPath } from '../../../adapters/trace/run-path.js';
import { waterfallRows } from '../../../adapters/trace/waterfall.js';
import { formatWaterfall } from '../../../adapters/trace/waterfall-text.js';

const runs = join(projectRoot(), 'test', 'traces', 'runs');
const run = (name: string): Promise<TraceRecord[]> => readTraceFile(join(runs, `${name}.jsonl`));

const entry = (state: string, at: number, from?: string, ms?: number): TraceRecord => ({
  at,
  machine: state.split('.')[0] as string,
  state,
  ...(from ? { from, ms } : {}),
  event: { type: from ? `xstate.done.actor.0.${from}` : 'xstate.init' },
});

describe('waterfallRows', () => {
  it('places a resume: each state from its entry to its machine leaving it, resume.* under start.resume', async () => {
    const rows = waterfallRows(await run('resume'));
    expect(rows).toHaveLength(15);
    const resume = rows.findIndex((row) => row.state === 'start.resume');
    expect(rows[resume]).toMatchObject({ depth: 0, startMs: 56, endMs: 1182, ms: 1126, failed: false, left: 'done' });
    const children = rows.filter((row) => row.machine === 'resume');
    expect(children.every((row) => row.depth === 1 && row.parent === resume)).toBe(true);
    expect(rows.find((row) => row.state === 'resume.rotating')).toMatchObject({
      startMs: 389,
      endMs: 1153,
      ms: 764,
      leftBy: 'done resume.rotating: secrets [redacted], exitCode 0',
    });
    // A final state is never left: it lasts until its parent leaves the invoking state.
    expect(rows.find((row) => row.state === 'resume.healthy')).toMatchObject({ left: 'never', startMs: 1181, endMs: 1182 });
    expect(rows.at(-1)).toMatchObject({ state: 'start.running', left: 'never', ms: 0 });
    // The states' own times tile the run from its first entry to its end.
    expect(rows.reduce((sum, row) => sum + row.selfMs, 0)).toBe(1182 - 8);
    expect(rows[resume]?.selfMs).toBe(1126 - children.reduce((sum, row) => sum + row.ms, 0));
    expect(rows.some((row) => row.bound !== undefined)).toBe(false);
  });

  it('marks the fallback path: the failed state, the failed child, the second resume as occurrence 2', async () => {
    const rows = waterfallRows(await run('corrupt-snapshot-fallback'));
    const failed = rows.filter((row) => row.failed);
    // File order: the invoking state first, then its machine's states.
    expect(failed.map((row) => [row.state, row.left])).toEqual([
      ['start.resume', 'child-failed'],
      ['resume.preparing', 'error'],
    ]);
    expect(failed[0]?.leftBy).toContain('done resume: failed in resume.preparing: E_SNAPSHOT_CORRUPT');
    expect(failed[1]?.leftBy).toContain('error resume.preparing: E_SNAPSHOT_CORRUPT the compressed state');
    expect(rows.filter((row) => row.state === 'start.resume').map((row) => [row.occurrence, row.startMs, row.endMs])).toEqual([
      [1, 53, 57],
      [2, 5513, 6394],
    ]);
    const second = rows.findIndex((row) => row.state === 'start.resume' && row.occurrence === 2);
    expect(rows.find((row) => row.state === 'resume.launching')).toMatchObject({ occurrence: 1, parent: second });
    expect(formatRunPath(runPath(rows))).toBe('resume (failed) → settingAside → coldBoot → capture → resume → running');
  });

  it('records a bound only where one passed, by its delay, at the time it fired', async () => {
    const rows = waterfallRows(await run('unhealthy'));
    const bounded = rows.filter((row) => row.bound !== undefined);
    expect(bounded).toHaveLength(1);
    expect(bounded[0]).toMatchObject({ state: 'coldBoot.probing', left: 'bound', failed: true, bound: { delay: 'healthBound', atMs: 8739 } });
    expect(bounded[0]?.bound?.ms).toBeUndefined();
    const numeric = waterfallRows([
      entry('resume.preparing', 0),
      { ...entry('resume.stopping', 30_000), from: 'resume.preparing', ms: 30_000, event: { type: 'xstate.after.30000.resume.preparing' } },
    ]);
    expect(numeric[0]?.bound).toEqual({ delay: '30000', atMs: 30_000, ms: 30_000 });
  });

  it('marks Ctrl-C, and a run without children has all its states as its path', async () => {
    const rows = waterfallRows(await run('ctrl-c-cold-boot'));
    expect(rows.find((row) => row.state === 'coldBoot.launching')).toMatchObject({ left: 'cancel', failed: true, leftBy: 'Ctrl-C' });
    expect(formatRunPath(runPath(rows))).toBe('coldBoot (failed) → failed');
    expect(formatRunPath(runPath(waterfallRows(await run('stop'))))).toBe('checking → terminating → cleaning → stopped');
    expect(formatRunPath(runPath([]))).toBe('(no states)');
  });
});

describe('formatWaterfall', () => {
  const files = readdirSync(runs).filter((file) => file.endsWith('.jsonl'));

  it.each([40, 80, 100, 200])('keeps every line of every recorded run within %i columns', async (width) => {
    for (const file of files) {
      const lines = formatWaterfall(waterfallRows(await readTraceFile(join(runs, file))), { width });
      for (const line of lines) expect(line.length, `${file}: ${line}`).toBeLessThanOrEqual(width);
      // The bars line up: every state's line is exactly as wide.
      const stateLines = lines.slice(1).filter((line) => line.endsWith('s') && /[█·┤]/.test(line));
      expect(new Set(stateLines.map((line) => line.length)).size, file).toBe(1);
    }
  });

  it('draws a resume: the axis, one bar per state where it ran, the seconds, the total and the path', async () => {
    const lines = formatWaterfall(waterfallRows(await run('resume')), { width: 100 });
    // The widest label is "  resume.preparing" (18): the bar area starts after it, its flag and two spaces.
    const barStart = 18 + 3;
    const barWidth = 100 - barStart - 1 - 8;
    expect(lines[0]).toBe(`${'state'.padEnd(barStart)}0s         0.2s        0.4s        0.6s        0.8s        1s           seconds`);
    const bar = (state: string): string => (lines.find((line) => line.trimStart().startsWith(`${state} `)) as string).slice(barStart, barStart + barWidth);
    expect(lines.find((line) => line.startsWith('  resume.rotating'))).toMatch(/ {3}0\.764s$/);
    // rotating ran from 389 to 1153 ms of 1182: its bar covers that share of the columns.
    expect(bar('resume.rotating').indexOf('█')).toBe(Math.floor((389 / 1182) * barWidth));
    expect(bar('resume.rotating').lastIndexOf('█')).toBe(Math.ceil((1153 / 1182) * barWidth) - 1);
    expect(bar('resume.rotating').replaceAll(' ', '')).toBe('█'.repeat(Math.ceil((1153 / 1182) * barWidth) - Math.floor((389 / 1182) * barWidth)));
    expect(bar('start.resume').trim()).toMatch(/^█+$/);
    expect(bar('start.running').trimEnd()).toBe(`${' '.repeat(barWidth - 1)}·`);
    expect(lines.some((line) => line.includes(' ! '))).toBe(false);
    expect(lines.at(-2)).toBe('1.182s in all, 15 states, ended in start.running');
    expect(lines.at(-1)).toBe('path: resume → running');
  });

  it('flags the state a failure left and says what left it, whole, under it', async () => {
    const lines = formatWaterfall(waterfallRows(await run('corrupt-snapshot-fallback')), { width: 60 });
    const index = lines.findIndex((line) => line.startsWith('  resume.preparing'));
    expect(lines[index]).toContain(' ! ');
    // The note is indented under the state, wrapped, until the next state's line.
    const rest = lines.slice(index + 1);
    const note = rest
      .slice(
        0,
        rest.findIndex((line) => !line.startsWith('    ')),
      )
      .map((line) => line.trim())
      .join(' ');
    expect(note).toContain(
      '! error resume.preparing: E_SNAPSHOT_CORRUPT the compressed state /tmp/warmvm-e2e/snapshots/fp-trunc/state.zst is corrupt: its end marker is missing: truncated',
    );
    expect(lines.slice(-2)).toEqual(['path: resume (failed) → settingAside → coldBoot → capture →', '  resume → running']);
  });

  it('marks where a bound passed', async () => {
    const lines = formatWaterfall(waterfallRows(await run('unhealthy')), { width: 100 });
    const probing = lines.find((line) => line.startsWith('  coldBoot.probing')) as string;
    expect(probing).toMatch(/ ! .*█┤ +3\.003s$/);
    expect(lines.some((line) => line.includes('! after healthBound (┤ its bound passed)'))).toBe(true);
  });

  it('gives a very short state one cell, and a state of no time a dot', () => {
    const rows = waterfallRows([entry('start.a', 0), entry('start.b', 1, 'start.a', 1), entry('start.c', 10_000, 'start.b', 9_999), entry('start.d', 10_000, 'start.c', 0)]);
    const lines = formatWaterfall(rows, { width: 60 });
    // "start.a" (7) is the widest label; 60 columns leave 41 for the bars.
    const bars = lines.slice(1, 5).map((line) => line.slice(10, 10 + 41));
    expect(bars[0]).toBe(`█${' '.repeat(40)}`);
    expect(bars[1]).toBe('█'.repeat(41));
    expect(bars[2]).toBe(`${' '.repeat(40)}·`);
    expect(lines[1]).toMatch(/ 0\.001s$/);
  });

  it('draws a run of no length without dividing by it', () => {
    const rows = waterfallRows([entry('stop.checking', 0), entry('stop.stopped', 0, 'stop.checking', 0)]);
    const lines = formatWaterfall(rows, { width: 50 });
    expect(lines[0]).toBe(`${'state'.padEnd(16)}0s${' '.repeat(23)}  seconds`);
    expect(lines[1]).toBe(`stop.checking   ·${' '.repeat(24)}   0.000s`);
    expect(lines.at(-2)).toBe('0.000s in all, 2 states, ended in stop.stopped');
    expect(lines.every((line) => line.length <= 50)).toBe(true);
    expect(formatWaterfall([], { width: 50 })).toEqual(['(the trace has no entries)']);
  });

  it('draws no narrower than 40 columns', async () => {
    const lines = formatWaterfall(waterfallRows(await run('resume')), { width: 5 });
    expect(Math.max(...lines.map((line) => line.length))).toBe(40);
  });
});
