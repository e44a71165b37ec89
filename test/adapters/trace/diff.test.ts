import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../../adapters/support/project-root.js';
import { align, diffTraces } from '../../../adapters/trace/diff.js';
import { formatTraceDiff } from '../../../adapters/trace/diff-text.js';
import { readTraceFile } from '../../../adapters/trace/file.js';
import type { TraceRecord } from '../../../adapters/trace/record.js';
import { formatRunPath } from '../../../adapters/trace/run-path.js';

const runs = join(projectRoot(), 'test', 'traces', 'runs');
const run = (name: string): Promise<TraceRecord[]> => readTraceFile(join(runs, `${name}.jsonl`));
const names = { a: 'a.jsonl', b: 'b.jsonl' };

describe('diffTraces', () => {
  it('a resume against a cold boot: the shared preamble side by side, each path only in its run, the boot first in the summary', async () => {
    const diff = diffTraces(await run('resume'), await run('cold'));
    const row = (state: string) => diff.rows.find((candidate) => candidate.state === state);
    expect(row('start.preflight')).toMatchObject({ aMs: 7, bMs: 6, diffMs: -1, ratio: 6 / 7 });
    expect(row('start.preflight')?.only).toBeUndefined();
    expect(row('resume.rotating')).toMatchObject({ only: 'a', aMs: 764, diffMs: -764 });
    expect(row('resume.rotating')?.bMs).toBeUndefined();
    expect(row('coldBoot.booting')).toMatchObject({ only: 'b', bMs: 6790, diffMs: 6790, depth: 1 });
    // The run's order is kept: A's resume where it ran, then B's cold boot, then the end both reached.
    const order = diff.rows.map((candidate) => candidate.state);
    expect(order.indexOf('resume.healthy')).toBeLessThan(order.indexOf('coldBoot.preparing'));
    expect(order.at(-1)).toBe('start.running');
    expect(diff.rows.filter((candidate) => candidate.state === 'start.running')).toHaveLength(1);
    expect(diff.a).toMatchObject({ totalMs: 1182, states: 15 });
    expect(diff.b).toMatchObject({ totalMs: 7803, states: 13 });
    expect(formatRunPath(diff.a.path)).toBe('resume → running');
    expect(formatRunPath(diff.b.path)).toBe('coldBoot → running');
    expect(diff.summary.diffMs).toBe(7803 - 1182);
    expect(diff.summary.slower[0]).toMatchObject({ state: 'coldBoot.booting', diffMs: 6790, only: 'b' });
    expect(diff.summary.faster[0]).toMatchObject({ state: 'resume.rotating', diffMs: -764, only: 'a' });
    expect(diff.summary.slower.length).toBeLessThanOrEqual(5);
  });

  it('a resume against a fallback: aligned by occurrence, the failed state marked, the cold boot and second resume only in B', async () => {
    const diff = diffTraces(await run('resume'), await run('corrupt-snapshot-fallback'));
    const row = (state: string, occurrence = 1) => diff.rows.find((candidate) => candidate.state === state && candidate.occurrence === occurrence);
    expect(row('resume.preparing')).toMatchObject({ aMs: 1, bMs: 2, bFailed: true, aFailed: false });
    expect(row('start.resume')).toMatchObject({ aMs: 1126, bMs: 4, bFailed: true });
    // B's first resume failed in preparing: its launching is the second resume's, its first entry.
    expect(row('resume.launching')).toMatchObject({ aMs: 73, bMs: 62 });
    expect(row('resume.preparing', 2)).toMatchObject({ only: 'b', bMs: 1 });
    expect(row('start.resume', 2)).toMatchObject({ only: 'b', bMs: 881 });
    expect(row('start.settingAside')).toMatchObject({ only: 'b' });
    expect(row('resume.stopping')).toMatchObject({ only: 'b' });
    const keys = diff.rows.map((candidate) => `${candidate.state}#${candidate.occurrence}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toHaveLength(32);
    expect(formatRunPath(diff.b.path)).toBe('resume (failed) → settingAside → coldBoot → capture → resume → running');
    expect(diff.summary.slower.map((phase) => phase.state).slice(0, 3)).toEqual(['coldBoot.booting', 'capture.storing', 'capture.migrating']);
    // start.resume's own time in A is its few ms outside resume.*, not its 1126.
    expect(diff.summary.faster.find((phase) => phase.state === 'start.resume')).toBeUndefined();
  });

  it('a run against itself: every state in both, no difference', async () => {
    const entries = await run('fallback-rotate-failed-twice');
    const diff = diffTraces(entries, entries);
    expect(diff.rows).toHaveLength(entries.length);
    expect(diff.rows.every((row) => row.only === undefined && row.diffMs === 0 && row.aMs === row.bMs)).toBe(true);
    expect(diff.rows.filter((row) => row.ratio !== undefined).every((row) => row.ratio === 1)).toBe(true);
    expect(diff.summary).toEqual({ diffMs: 0, ratio: 1, slower: [], faster: [] });
  });
});

describe('align', () => {
  it('pairs the common keys in order and keeps the others where they stand', () => {
    expect(align(['a', 'b', 'c'], ['a', 'x', 'c'])).toEqual([
      [0, 0],
      [1, undefined],
      [undefined, 1],
      [2, 2],
    ]);
  });

  it('gives a key both have in another order one row, never two', () => {
    const pairs = align(['a', 'b', 'c'], ['c', 'a', 'b']);
    expect(pairs).toHaveLength(3);
    expect(pairs).toContainEqual([2, 0]);
    expect(pairs).toContainEqual([0, 1]);
    expect(pairs).toContainEqual([1, 2]);
  });
});

describe('formatTraceDiff', () => {
  it('prints the rows, both paths, the totals and the phases that made B slower', async () => {
    const lines = formatTraceDiff(diffTraces(await run('resume'), await run('corrupt-snapshot-fallback')), names);
    expect(lines[0]).toMatch(/^state +A +B +B-A {2}B\/A$/);
    expect(lines.find((line) => line.startsWith('  resume.preparing '))).toMatch(/0\.001s {2} +0\.002s! +\+0\.001s {2}2\.00×$/);
    expect(lines.find((line) => line.startsWith('  resume.preparing #2'))).toMatch(/ — {2} +0\.001s {2,}\+0\.001s {2}only in B$/);
    expect(lines).toContain('A: a.jsonl: 1.182s, 15 states, path resume → running');
    expect(lines).toContain('B: b.jsonl: 6.394s, 32 states, path resume (failed) → settingAside → coldBoot → capture → resume → running');
    expect(lines).toContain('B took 5.212s longer than A (5.41×)');
    expect(lines.find((line) => line.startsWith('B slower in: '))).toMatch(/^B slower in: coldBoot\.booting \+3\.754s \(only in B\), capture\.storing \+0\.664s \(only in B\), /);
  });

  it('says a run against itself took as long', async () => {
    const entries = await run('resume');
    const lines = formatTraceDiff(diffTraces(entries, entries), names);
    expect(lines).toContain('B took as long as A (1.00×)');
    expect(lines.some((line) => line.startsWith('B slower in') || line.startsWith('B faster in'))).toBe(false);
    expect(lines.some((line) => line.includes('only in'))).toBe(false);
  });
});
