import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../adapters/support/project-root.js';
import { cli } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/temp.js';

// The built CLI as a real process (npm test builds first), on temp files and a temp home.
const temp = useTempDirs();
const traces = join(projectRoot(), 'test', 'traces');
const resumeExpected = join(traces, 'resume.json');
const resumeRun = join(traces, 'runs', 'resume.jsonl');
const fallbackRun = join(traces, 'runs', 'corrupt-snapshot-fallback.jsonl');

/** A home with one instance whose trace is a copy of `run`. */
async function homeWith(name: string, run: string): Promise<string> {
  const home = await temp();
  await mkdir(join(home, 'instances', name), { recursive: true });
  await writeFile(join(home, 'instances', name, 'trace.jsonl'), await readFile(run));
  return home;
}

describe('warmvm trace check', () => {
  it('exits 0 with one line when the trace matches', async () => {
    const home = await homeWith('ci1', resumeRun);
    const result = await cli(['trace', 'check', resumeExpected, '--name', 'ci1'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.trim().split('\n')).toHaveLength(1);
    expect(result.stdout).toContain(`trace check OK: ${join(home, 'instances', 'ci1', 'trace.jsonl')} matches ${resumeExpected}`);
  });

  it('exits 1 with the diff on stdout when it does not', async () => {
    const result = await cli(['trace', 'check', resumeExpected, fallbackRun], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain(`trace check FAILED: ${fallbackRun} does not match ${resumeExpected}`);
    expect(result.stdout).toMatch(/\n {2}> +7 {2}resume\.launching +#7 +\+0\.055s {2}resume\.stopping +<- diverges here\n/);
    expect(result.stdout).toContain('E_SNAPSHOT_CORRUPT the compressed state');
    expect(result.stderr).toBe('');
  });

  it('with --json, prints {ok, expected, actual, problems}', async () => {
    const result = await cli(['trace', 'check', resumeExpected, fallbackRun, '--json'], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(1);
    expect(result.json).toMatchObject({ ok: false, expected: resumeExpected, actual: fallbackRun });
    const problems = result.json.problems as { kind: string; item?: unknown; entry?: { state: string } }[];
    expect(problems.map((problem) => problem.kind)).toEqual(['sequence', 'absent', 'absent', 'absent', 'absent']);
    expect(problems[0]).toMatchObject({ item: { index: 7, pattern: 'resume.launching' }, entry: { index: 7, state: 'resume.stopping' } });
    const ok = await cli(['trace', 'check', resumeExpected, resumeRun, '--json'], { WARMVM_HOME: await temp() });
    expect(ok.exitCode).toBe(0);
    expect(ok.json).toMatchObject({ ok: true, problems: [] });
  });

  it('exits 2 on an expected file that is not valid, naming the field', async () => {
    const expected = join(await temp(), 'expect.json');
    await writeFile(expected, JSON.stringify({ states: ['start.preflight', { state: 'start.image', maxMs: '5s' }] }));
    const result = await cli(['trace', 'check', expected, resumeRun], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`warmvm: ${expected} is not a valid expected trace`);
    expect(result.stderr).toContain('"states[1].maxMs" must be a number of milliseconds >= 0 (got "5s")');
  });

  it('exits 2 when the trace is missing, saying how to make one', async () => {
    const home = await temp();
    const result = await cli(['trace', 'check', resumeExpected, '--name', 'ci2'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`there is no trace at ${join(home, 'instances', 'ci2', 'trace.jsonl')}`);
    expect(result.stderr).toContain('run "warmvm start --name ci2" first');
    const json = await cli(['trace', 'check', resumeExpected, '--name', 'ci2', '--json'], { WARMVM_HOME: home });
    expect(json.exitCode).toBe(2);
    expect(json.json).toMatchObject({ outcome: 'failed', error: { code: 'E_TRACE_MISSING' } });
  });

  it('exits 2 on a damaged trace, naming its file and line', async () => {
    const run = join(await temp(), 'trace.jsonl');
    const lines = (await readFile(resumeRun, 'utf8')).split('\n');
    lines[2] = '{"at": 47, "state": "start.acc';
    await writeFile(run, lines.join('\n'));
    const result = await cli(['trace', 'check', resumeExpected, run], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${run}:3 is not JSON`);
  });

  it('exits 2 on bad usage', async () => {
    expect((await cli(['trace', 'check'], { WARMVM_HOME: await temp() })).exitCode).toBe(2);
    expect((await cli(['trace', 'check', resumeExpected, resumeRun, '--nope'], { WARMVM_HOME: await temp() })).exitCode).toBe(2);
    const both = await cli(['trace', 'check', resumeExpected, resumeRun, '--name', 'x'], { WARMVM_HOME: await temp() });
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain('give either a trace file');
  });

  it('explains the format in --help', async () => {
    const result = await cli(['trace', 'check', '--help']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('Exit 2: it could not be checked');
    expect(result.stdout).toContain('"..." zero or more entries of anything');
    expect(result.stdout).toContain('See "Traces" in the README.');
  });
});

describe('warmvm trace show', () => {
  it("prints an instance's trace as a timeline", async () => {
    const home = await homeWith('ci3', fallbackRun);
    const result = await cli(['trace', 'show', '--name', 'ci3'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(34);
    expect(lines[8]).toMatch(/^ {2}\+0\.055s {4}resume\.stopping +preparing 2 ms +error resume\.preparing: E_SNAPSHOT_CORRUPT the compressed state .* is corrupt/);
    expect(lines.at(-1)).toBe('6.394s in all, 32 states, ended in start.running');
  });

  it('with --json, prints the file and its entries', async () => {
    const result = await cli(['trace', 'show', resumeRun, '--json'], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(0);
    expect(result.json.file).toBe(resumeRun);
    expect(result.json.name).toBeUndefined();
    expect((result.json.entries as { state: string }[]).map((entry) => entry.state).at(-1)).toBe('start.running');
    const byName = await cli(['trace', 'show', '--name', 'ci4', '--json'], { WARMVM_HOME: await homeWith('ci4', resumeRun) });
    expect(byName.json).toMatchObject({ name: 'ci4' });
    expect(byName.json.entries).toHaveLength(15);
  });

  it('fails with the missing file named', async () => {
    const home = await temp();
    const result = await cli(['trace', 'show', '--name', 'ci5'], { WARMVM_HOME: home });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('run "warmvm start --name ci5" first');
  });
});

describe('warmvm trace show --waterfall', () => {
  it('draws the run as wide as --width, 100 columns on a pipe', async () => {
    const result = await cli(['trace', 'show', '--waterfall', '--width', '72', fallbackRun], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(Math.max(...lines.map((line) => line.length))).toBe(72);
    expect(lines.find((line) => line.startsWith('  resume.preparing'))).toContain(' ! ');
    expect(lines.slice(-2).join(' ')).toContain('path: resume (failed) → settingAside → coldBoot → capture → resume');
    const piped = await cli(['trace', 'show', '--waterfall', '--name', 'ci6'], { WARMVM_HOME: await homeWith('ci6', resumeRun) });
    expect(piped.exitCode).toBe(0);
    expect(
      Math.max(
        ...piped.stdout
          .trimEnd()
          .split('\n')
          .map((line) => line.length),
      ),
    ).toBe(100);
  });

  it('with --json, prints the rows', async () => {
    const result = await cli(['trace', 'show', '--waterfall', resumeRun, '--json'], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(0);
    const rows = result.json.rows as { state: string; depth: number; startMs: number; endMs: number }[];
    expect(rows).toHaveLength(15);
    expect(rows.find((row) => row.state === 'resume.incoming')).toMatchObject({ depth: 1, startMs: 131, endMs: 384 });
  });

  it('refuses a width it cannot draw', async () => {
    const result = await cli(['trace', 'show', '--waterfall', '--width', '12', resumeRun], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('--width 12 is not a number of columns of at least 40');
  });

  it('refuses --width without --waterfall, naming the flag it lacks, instead of ignoring it', async () => {
    const result = await cli(['trace', 'show', '--width', '120', resumeRun], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('--width sets the width of the waterfall, and no --waterfall was given');
    expect(result.stderr).toContain('warmvm trace show --waterfall --width 120');
  });
});

describe('warmvm trace diff', () => {
  it('exits 0 with the table, both paths and what made B slower', async () => {
    const result = await cli(['trace', 'diff', resumeRun, fallbackRun], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`B: ${fallbackRun}: 6.394s, 32 states, path resume (failed) → settingAside → coldBoot → capture → resume → running`);
    expect(result.stdout).toContain('B took 5.212s longer than A (5.41×)');
    expect(result.stdout).toMatch(/\nB slower in: coldBoot\.booting \+3\.754s \(only in B\)/);
    expect(result.stderr).toBe('');
  });

  it('with --json, prints both sides with their files, the rows and the summary', async () => {
    const result = await cli(['trace', 'diff', fallbackRun, fallbackRun, '--json'], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(0);
    expect(result.json).toMatchObject({ a: { file: fallbackRun, totalMs: 6394 }, b: { file: fallbackRun }, summary: { diffMs: 0, slower: [], faster: [] } });
    expect(result.json.rows).toHaveLength(32);
  });

  it('exits 2 when a trace cannot be read, or on bad usage', async () => {
    const missing = join(await temp(), 'nope.jsonl');
    const result = await cli(['trace', 'diff', resumeRun, missing], { WARMVM_HOME: await temp() });
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`there is no trace at ${missing}`);
    const json = await cli(['trace', 'diff', missing, resumeRun, '--json'], { WARMVM_HOME: await temp() });
    expect(json.exitCode).toBe(2);
    expect(json.json).toMatchObject({ outcome: 'failed', error: { code: 'E_TRACE_MISSING' } });
    expect((await cli(['trace', 'diff', resumeRun], { WARMVM_HOME: await temp() })).exitCode).toBe(2);
  });
});
