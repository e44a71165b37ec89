import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WarmvmError } from '../../../adapters/support/errors.js';
import { describeEvent } from '../../../adapters/trace/event.js';
import { readTraceFile } from '../../../adapters/trace/file.js';
import type { TraceRecord } from '../../../adapters/trace/record.js';
import { formatTimeline, machineDepths } from '../../../adapters/trace/timeline.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

const line = (state: string, at: number, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ t: '2026-11-23T08:32:05.846Z', at, machine: state.split('.')[0], state, event: { type: 'xstate.init' }, ...extra });

async function readError(path: string, options = {}): Promise<WarmvmError> {
  try {
    await readTraceFile(path, options);
  } catch (error) {
    expect(error).toBeInstanceOf(WarmvmError);
    return error as WarmvmError;
  }
  throw new Error('expected readTraceFile to fail');
}

describe('readTraceFile', () => {
  it('reads the entries with a state, in order, and skips other lines', async () => {
    const file = join(await temp(), 'trace.jsonl');
    await writeFile(
      file,
      [line('start.preflight', 6), '', JSON.stringify({ kind: 'note', at: 7 }), '[1,2]', line('start.image', 25, { from: 'start.preflight', ms: 19 })].join('\n') + '\n',
    );
    const entries = await readTraceFile(file);
    expect(entries.map((entry) => [entry.state, entry.at, entry.from, entry.ms])).toEqual([
      ['start.preflight', 6, undefined, undefined],
      ['start.image', 25, 'start.preflight', 19],
    ]);
    expect(entries[0]?.t).toBe('2026-11-23T08:32:05.846Z');
  });

  it('keeps the optional warning', async () => {
    const file = join(await temp(), 'trace.jsonl');
    await writeFile(file, line('resume.probing', 5, { warning: 'rotation is off' }) + '\n');
    expect((await readTraceFile(file))[0]?.warning).toBe('rotation is off');
  });

  it('says which file is missing and, for an instance, how to make it', async () => {
    const file = join(await temp(), 'instances', 'ci1', 'trace.jsonl');
    const error = await readError(file, { instance: 'ci1' });
    expect(error.code).toBe('E_TRACE_MISSING');
    expect(error.message).toBe(`there is no trace at ${file}`);
    expect(error.hint).toContain('run "warmvm start --name ci1" first');
    expect((await readError(file)).hint).toContain('instances/<name>/trace.jsonl');
  });

  it('refuses a folder with its own code', async () => {
    const dir = await temp();
    await mkdir(join(dir, 'trace.jsonl'));
    expect((await readError(join(dir, 'trace.jsonl'))).code).toBe('E_TRACE_UNREADABLE');
  });

  it('names the file and line of a line that is not JSON', async () => {
    const file = join(await temp(), 'trace.jsonl');
    await writeFile(file, [line('start.preflight', 6), '{"at": 7, "state": "start.im', line('start.image', 25)].join('\n') + '\n');
    const error = await readError(file);
    expect(error.code).toBe('E_TRACE_BAD_LINE');
    expect(error.message).toMatch(new RegExp(`^${file.replace(/[.]/g, '\\.')}:2 is not JSON`));
  });

  it('a bad last line that ends with a newline is still an error', async () => {
    const file = join(await temp(), 'trace.jsonl');
    await writeFile(file, [line('start.preflight', 6), '{"at": 7, "sta'].join('\n') + '\n');
    expect((await readError(file)).message).toContain(':2 is not JSON');
  });

  it('ignores an incomplete last line: a run still writing', async () => {
    const file = join(await temp(), 'trace.jsonl');
    await writeFile(file, [line('start.preflight', 6), line('start.image', 25), '{"t":"2026-11-23T08:32:05.887Z","at":47,"machine":"sta'].join('\n'));
    expect((await readTraceFile(file)).map((entry) => entry.state)).toEqual(['start.preflight', 'start.image']);
  });

  it('refuses an entry without a time', async () => {
    const file = join(await temp(), 'trace.jsonl');
    await writeFile(file, `${line('start.preflight', 6)}\n${JSON.stringify({ state: 'start.image' })}\n`);
    expect((await readError(file)).message).toContain(':2 has a state but no number "at"');
  });
});

const entry = (state: string, at: number, extra: Partial<TraceRecord> = {}): TraceRecord => ({
  at,
  machine: state.split('.')[0] as string,
  state,
  event: { type: 'xstate.init' },
  ...extra,
});

describe('machineDepths', () => {
  it('puts a child machine under the entry it follows, and closes it when its parent moves on', () => {
    const entries = [
      entry('start.preflight', 0),
      entry('start.resume', 5),
      entry('resume.preparing', 5),
      entry('resume.failed', 7),
      entry('start.coldBoot', 8),
      entry('coldBoot.launching', 8),
      entry('coldBoot.ready', 9),
      entry('start.capture', 10),
      entry('capture.stopping', 10),
      entry('start.resume', 11),
      entry('resume.preparing', 11),
      entry('start.running', 12),
    ];
    expect(machineDepths(entries)).toEqual([0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0]);
  });

  it('takes whichever machine comes first as the root: capture alone, a grandchild', () => {
    expect(machineDepths([entry('capture.stopping', 0), entry('capture.failed', 1)])).toEqual([0, 0]);
    expect(machineDepths([entry('a.x', 0), entry('b.x', 0), entry('c.x', 0), entry('b.y', 1), entry('a.y', 2)])).toEqual([0, 1, 2, 1, 0]);
  });
});

describe('describeEvent', () => {
  it('says init, done, error, after and Ctrl-C briefly', () => {
    expect(describeEvent({ type: 'xstate.init' })).toBe('init');
    expect(describeEvent({ type: 'xstate.done.actor.0.coldBoot.launching', output: { pid: 5805 } })).toBe('done coldBoot.launching: pid 5805');
    expect(describeEvent({ type: 'xstate.done.actor.0.resume.incoming', output: { runstate: 'paused' } })).toBe('done resume.incoming: runstate paused');
    expect(
      describeEvent({
        type: 'xstate.done.actor.0.resume.probing',
        output: [
          { url: 'http://127.0.0.1:1/health', status: 200 },
          { url: 'u', status: 503 },
        ],
      }),
    ).toBe('done resume.probing: HTTP 200, 503');
    expect(describeEvent({ type: 'xstate.error.actor.0.resume.preparing', error: { code: 'E_SNAPSHOT_CORRUPT', message: 'the compressed state x is corrupt' } })).toBe(
      'error resume.preparing: E_SNAPSHOT_CORRUPT the compressed state x is corrupt',
    );
    expect(describeEvent({ type: 'xstate.after.30000.resume.incoming' })).toBe('after 30000 ms');
    expect(describeEvent({ type: 'xstate.after.healthBound.coldBoot.probing' })).toBe('after healthBound');
    expect(describeEvent({ type: 'CANCEL' })).toBe('Ctrl-C');
    expect(describeEvent({ type: 'SOMETHING_ELSE' })).toBe('SOMETHING_ELSE');
  });

  it("sums up a child machine's result, and cuts long values", () => {
    expect(describeEvent({ type: 'xstate.done.actor.resume', output: { outcome: 'healthy', pid: 42, health: [{ status: 200 }], rotated: true } })).toBe(
      'done resume: healthy, pid 42, HTTP 200',
    );
    expect(
      describeEvent({ type: 'xstate.done.actor.coldBoot', output: { outcome: 'failed', failure: { state: 'coldBoot.probing', code: 'E_BOUND', message: 'no health' } } }),
    ).toBe('done coldBoot: failed in coldBoot.probing: E_BOUND no health');
    const long = describeEvent({ type: 'xstate.done.actor.0.start.accelerator', output: { accel: 'tcg', reason: 'x'.repeat(100), more: 1, most: 2 } });
    expect(long).toBe(`done start.accelerator: accel tcg, reason ${'x'.repeat(47)}…, more 1`);
  });
});

describe('formatTimeline', () => {
  const entries: TraceRecord[] = [
    entry('start.preflight', 6),
    entry('start.resume', 53, { from: 'start.preflight', ms: 47, event: { type: 'xstate.done.actor.0.start.preflight', output: { qemuVersion: '10.0.2' } } }),
    entry('resume.preparing', 53),
    entry('resume.stopping', 55, {
      from: 'resume.preparing',
      ms: 2,
      event: { type: 'xstate.error.actor.0.resume.preparing', error: { code: 'E_SNAPSHOT_CORRUPT', message: 'corrupt' } },
    }),
    entry('resume.probing', 1234, { from: 'resume.stopping', ms: 1179, warning: "rotation is off: the snapshot's placeholder secrets stay" }),
    entry('start.failed', 1300, { from: 'start.resume', ms: 1247, event: { type: 'CANCEL' } }),
  ];

  it('prints one line per entry: offset, indented state, the state left and its time, the event', () => {
    const lines = formatTimeline(entries).split('\n');
    expect(lines).toHaveLength(entries.length + 2);
    expect(lines[0]).toMatch(/^ {7}at {2}state entered +state left +event$/);
    expect(lines[1]).toMatch(/^ {2}\+0\.006s {2}start\.preflight +init$/);
    expect(lines[2]).toMatch(/^ {2}\+0\.053s {2}start\.resume +preflight 47 ms +done start\.preflight: qemuVersion 10\.0\.2$/);
    expect(lines[3]).toMatch(/^ {2}\+0\.053s {4}resume\.preparing +init$/);
    expect(lines[4]).toMatch(/^ {2}\+0\.055s {4}resume\.stopping +preparing 2 ms +error resume\.preparing: E_SNAPSHOT_CORRUPT corrupt$/);
    expect(lines[5]).toMatch(/^ {2}\+1\.234s {4}resume\.probing +stopping 1179 ms +init {2}WARNING: rotation is off: the snapshot's placeholder secrets stay$/);
    expect(lines[6]).toMatch(/^ {2}\+1\.300s {2}start\.failed +resume 1247 ms +Ctrl-C$/);
  });

  it("ends with the total time and the root machine's last state", () => {
    expect(formatTimeline(entries).split('\n').at(-1)).toBe('1.300s in all, 6 states, ended in start.failed');
    expect(
      formatTimeline([...entries.slice(0, 4)])
        .split('\n')
        .at(-1),
    ).toBe('0.055s in all, 4 states, ended in start.resume');
    expect(formatTimeline([])).toBe('(the trace has no entries)');
  });
});
