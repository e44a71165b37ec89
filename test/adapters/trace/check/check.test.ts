import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WarmvmError } from '../../../../adapters/support/errors.js';
import { checkTrace, timeInStates } from '../../../../adapters/trace/check/check.js';
import { parseExpectedTrace, validateExpectedTrace } from '../../../../adapters/trace/check/expected.js';
import { formatTraceCheck } from '../../../../adapters/trace/check/report.js';
import type { TraceCheckResult, TraceProblem } from '../../../../adapters/trace/check/result.js';
import type { TraceRecord } from '../../../../adapters/trace/record.js';
import { parseTraceLines } from '../../../../adapters/trace/file.js';
import { projectRoot } from '../../../../adapters/support/project-root.js';

type Step = [state: string, at: number, extra?: Partial<TraceRecord>];

/** Entries as the recorder writes them: `from`/`ms` from the same machine's previous entry. */
function trace(...steps: Step[]): TraceRecord[] {
  const last = new Map<string, TraceRecord>();
  return steps.map(([state, at, extra]) => {
    const machine = state.split('.')[0] as string;
    const previous = extra && 'from' in extra ? undefined : last.get(machine);
    const entry: TraceRecord = {
      at,
      machine,
      state,
      from: previous?.state,
      ms: previous ? at - previous.at : undefined,
      event: { type: previous ? `xstate.done.actor.0.${previous.state}` : 'xstate.init' },
      ...extra,
    };
    last.set(machine, entry);
    return entry;
  });
}

const START = ['start.preflight', 'start.image', 'start.accelerator', 'start.choosing'];

// resume.rotating lasts 740 ms; the resume states, from preparing to healthy, 920 ms.
const resumed = trace(
  ['start.preflight', 0],
  ['start.image', 10],
  ['start.accelerator', 20],
  ['start.choosing', 25],
  ['start.resume', 30],
  ['resume.preparing', 30],
  ['resume.launching', 40],
  ['resume.incoming', 100],
  ['resume.paused', 150],
  ['resume.cont', 150],
  ['resume.rotating', 160],
  ['resume.probing', 900],
  ['resume.healthy', 950],
  ['start.running', 951],
);

const fellBack = trace(
  ['start.preflight', 0],
  ['start.image', 10],
  ['start.accelerator', 20],
  ['start.choosing', 25],
  ['start.resume', 30],
  ['resume.preparing', 30],
  ['resume.stopping', 32, { event: { type: 'xstate.error.actor.0.resume.preparing', error: { code: 'E_SNAPSHOT_CORRUPT', message: 'the state is corrupt' } } }],
  ['resume.failed', 33],
  [
    'start.settingAside',
    34,
    {
      event: {
        type: 'xstate.done.actor.resume',
        output: { outcome: 'failed', failure: { state: 'resume.preparing', code: 'E_SNAPSHOT_CORRUPT', message: 'the state is corrupt' } },
      },
    },
  ],
  ['start.coldBoot', 36],
  ['coldBoot.launching', 36],
  ['coldBoot.booting', 100],
  ['coldBoot.ready', 3000],
  ['start.running', 3001],
);

const example = {
  description: 'a resume that never fell back',
  states: [...START, 'start.resume', 'resume.*', { state: 'resume.rotating', maxMs: 5000 }, '...', 'start.running'],
  absent: ['coldBoot.*', 'start.settingAside'],
  maxTotalMs: 20000,
};

function check(expected: Record<string, unknown>, entries: readonly TraceRecord[]): TraceCheckResult {
  return checkTrace(validateExpectedTrace({ absent: [], ...expected }, 'expected.json'), entries, { actualSource: 'trace.jsonl' });
}

function only<K extends TraceProblem['kind']>(result: TraceCheckResult, kind: K): Extract<TraceProblem, { kind: K }> {
  expect(result.ok).toBe(false);
  const found = result.problems.filter((problem) => problem.kind === kind);
  expect(found).toHaveLength(1);
  return found[0] as Extract<TraceProblem, { kind: K }>;
}

describe('checkTrace: the sequence', () => {
  it('matches every state named exactly, in order', () => {
    const result = check({ states: resumed.map((entry) => entry.state) }, resumed);
    expect(result.problems).toEqual([]);
    expect(result.ok).toBe(true);
  });

  it('matches the README example, a glob followed by an exact state of the same prefix', () => {
    expect(check(example, resumed).ok).toBe(true);
    expect(check({ states: ['...', 'resume.*', 'resume.healthy', 'start.running'] }, resumed).ok).toBe(true);
  });

  it('a glob matches one or more consecutive entries under its prefix, at any depth, never zero', () => {
    const nested = trace(['start.preflight', 0], ['start.a.b.c', 5], ['start.a.d', 9]);
    expect(check({ states: ['start.preflight', 'start.a.*'] }, nested).ok).toBe(true);
    expect(check({ states: ['start.*'] }, nested).ok).toBe(true);
    expect(check({ states: [...START, 'start.resume', 'coldBoot.*', 'resume.*', 'start.running'] }, resumed).ok).toBe(false);
    // "resume.*" is not "resume" followed by anything: "resumeX.a" is another machine.
    expect(check({ states: ['resume.*'] }, trace(['resumeX.a', 0])).ok).toBe(false);
  });

  it('"..." matches zero or more entries of anything, at either end or between', () => {
    expect(check({ states: ['start.preflight', '...', 'start.running'] }, resumed).ok).toBe(true);
    expect(check({ states: ['...', 'start.running'] }, resumed).ok).toBe(true);
    expect(check({ states: ['...'] }, [])).toMatchObject({ ok: true });
    expect(check({ states: ['...', 'start.preflight', '...', 'start.image', '...', 'start.running', '...'] }, resumed).ok).toBe(true);
    expect(check({ states: ['...', 'start.preflight', 'start.running'] }, resumed).ok).toBe(false);
  });

  it('an optional item may match zero times or as usual', () => {
    const optional = { state: 'start.settingAside', optional: true };
    expect(check({ states: [...START, 'start.resume', 'resume.*', optional, 'start.running'] }, resumed).ok).toBe(true);
    expect(check({ states: [...START, 'start.resume', 'resume.*', { state: 'start.settingAside' }, 'start.running'] }, resumed).ok).toBe(false);
    expect(check({ states: [...START, 'start.resume', 'resume.*', optional, '...'] }, fellBack).ok).toBe(true);
    expect(check({ states: [...START, 'start.resume', { state: 'coldBoot.*', optional: true }, 'resume.*', 'start.running'] }, resumed).ok).toBe(true);
  });

  it('is anchored at both ends: an extra entry at either end fails', () => {
    const withoutLast = resumed.slice(0, -1).map((entry) => entry.state);
    const atEnd = only(check({ states: withoutLast }, resumed), 'sequence');
    expect(atEnd.item).toBeUndefined();
    expect(atEnd.entry?.state).toBe('start.running');
    expect(atEnd.message).toContain('the expected list ends after item 12');
    expect(atEnd.message).toContain('goes on with entry #13 "start.running"');
    const atStart = only(check({ states: resumed.slice(1).map((entry) => entry.state) }, resumed), 'sequence');
    expect(atStart.item).toEqual({ index: 0, pattern: 'start.image' });
    expect(atStart.entry?.index).toBe(0);
  });

  it('reports the furthest point reached: the item that could not match, the entry it met, and what remains', () => {
    const result = check(example, fellBack);
    const problem = only(result, 'sequence');
    // "resume.*" took preparing, stopping and failed; "resume.rotating" then met start.settingAside.
    expect(problem.item).toEqual({ index: 6, pattern: 'resume.rotating' });
    expect(problem.entry).toMatchObject({ index: 8, state: 'start.settingAside', at: 34, event: { type: 'xstate.done.actor.resume' } });
    expect(problem.remainingExpected).toEqual(['resume.rotating', '...', 'start.running']);
    expect(problem.remainingActual).toEqual(['start.settingAside', 'start.coldBoot', 'coldBoot.launching', 'coldBoot.booting', 'coldBoot.ready', 'start.running']);
    expect(problem.message).toContain('expected item 6 "resume.rotating" (maxMs 5000), but the trace has entry #8 "start.settingAside"');
    expect(problem.message).toContain('E_SNAPSHOT_CORRUPT the state is corrupt');
    expect(result.divergence).toEqual({ item: 6, entry: 8 });
  });

  it('summarises the error event of the entry it could not match', () => {
    const problem = only(check({ states: [...START, 'start.resume', 'resume.preparing', 'resume.launching', '...'] }, fellBack), 'sequence');
    expect(problem.entry?.state).toBe('resume.stopping');
    expect(problem.entry?.event).toEqual({ type: 'xstate.error.actor.0.resume.preparing', error: { code: 'E_SNAPSHOT_CORRUPT', message: 'the state is corrupt' } });
    expect(problem.message).toContain('error resume.preparing: E_SNAPSHOT_CORRUPT the state is corrupt');
  });

  it('past an optional item that did not match, names the item after it', () => {
    const problem = only(check({ states: ['start.preflight', { state: 'start.x', optional: true }, 'start.running'] }, resumed.slice(0, 2)), 'sequence');
    expect(problem.item).toEqual({ index: 2, pattern: 'start.running' });
    expect(problem.entry?.state).toBe('start.image');
  });

  it('names the last entry, not the end of the trace, when an item was tried there', () => {
    const failed = trace(['start.preflight', 0], ['start.failed', 5]);
    const problem = only(check({ states: ['...', 'start.running'] }, failed), 'sequence');
    expect(problem.entry?.state).toBe('start.failed');
    const short = only(check({ states: ['start.preflight', 'start.failed', 'start.running'] }, failed), 'sequence');
    expect(short.entry).toBeUndefined();
    expect(short.message).toContain('expected item 2 "start.running", but the trace ends after entry #1 "start.failed"');
    expect(only(check({ states: ['start.preflight'] }, []), 'sequence').message).toContain('the trace has no entries');
  });

  it('skips lines without a state', () => {
    const withOther = [resumed[0], { kind: 'note', at: 1 } as unknown as TraceRecord, ...resumed.slice(1)] as TraceRecord[];
    const result = check({ states: resumed.map((entry) => entry.state) }, withOther);
    expect(result.ok).toBe(true);
    expect(result.entries).toHaveLength(resumed.length);
  });
});

describe('checkTrace: bounds and absent states', () => {
  it('maxMs bounds one state by the time until its machine left it', () => {
    const states = (maxMs: number) => [...START, 'start.resume', 'resume.*', { state: 'resume.rotating', maxMs }, '...', 'start.running'];
    expect(check({ states: states(740) }, resumed).ok).toBe(true);
    const problem = only(check({ states: states(739) }, resumed), 'maxMs');
    expect(problem).toMatchObject({ item: { index: 6, pattern: 'resume.rotating' }, maxMs: 739, ms: 740, entries: [10] });
    expect(problem.message).toContain('allows 739 ms, but the trace spent 740 ms in #10 resume.rotating');
  });

  it('maxMs bounds a glob by the sum over its entries; a state never left counts 0', () => {
    const states = (maxMs: number) => [...START, 'start.resume', { state: 'resume.*', maxMs }, 'start.running'];
    expect(check({ states: states(920) }, resumed).ok).toBe(true);
    const problem = only(check({ states: states(919) }, resumed), 'maxMs');
    expect(problem.ms).toBe(920);
    expect(problem.entries).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('a bound chooses how a glob splits when another split keeps within it', () => {
    // Two globs over the resume states: the first may take only what fits in 200 ms.
    const states = [...START, 'start.resume', { state: 'resume.*', maxMs: 200 }, 'resume.*', 'start.running'];
    expect(check({ states }, resumed).ok).toBe(true);
    expect(only(check({ states: [...START, 'start.resume', { state: 'resume.*', maxMs: 5 }, 'resume.*', 'start.running'] }, resumed), 'maxMs').ms).toBe(10);
  });

  it("the time in a state comes from the same machine's next entry, and a new run of it means never left", () => {
    const entries = trace(
      ['start.resume', 0],
      ['resume.preparing', 0],
      ['resume.failed', 7],
      ['start.coldBoot', 9],
      ['start.resume', 20],
      ['resume.preparing', 20, { from: undefined, ms: undefined }],
      ['resume.healthy', 25],
    );
    expect(timeInStates(entries)).toEqual([9, 7, 0, 11, 0, 5, 0]);
    // An entry that says it left some other state does not time this one.
    expect(timeInStates(trace(['resume.a', 0], ['resume.c', 8, { from: 'resume.b', ms: 5 }]))).toEqual([0, 0]);
  });

  it('absent patterns must match no entry', () => {
    expect(check(example, resumed).ok).toBe(true);
    const result = check({ states: ['...'], absent: ['coldBoot.*', 'start.settingAside', 'capture.*'] }, fellBack);
    const absent = result.problems.filter((problem) => problem.kind === 'absent');
    expect(absent.map((problem) => problem.kind === 'absent' && problem.pattern)).toEqual(['coldBoot.*', 'start.settingAside']);
    expect(absent[0]?.message).toContain(
      '"coldBoot.*" must be absent, but the trace has #10 coldBoot.launching (+0.036s), #11 coldBoot.booting (+0.100s), #12 coldBoot.ready (+3.000s)',
    );
  });

  it("maxTotalMs bounds the last entry's time", () => {
    expect(check({ states: ['...'], maxTotalMs: 951 }, resumed).ok).toBe(true);
    const problem = only(check({ states: ['...'], maxTotalMs: 950 }, resumed), 'maxTotalMs');
    expect(problem).toMatchObject({ maxTotalMs: 950, totalMs: 951 });
    expect(problem.message).toContain("maxTotalMs is 950, but the run's last entry is at +0.951s");
  });

  it('reports every kind of problem at once', () => {
    const result = check({ ...example, maxTotalMs: 100 }, fellBack);
    expect(result.problems.map((problem) => problem.kind)).toEqual(['sequence', 'absent', 'absent', 'maxTotalMs']);
  });
});

describe('formatTraceCheck', () => {
  it('is one line when the trace matches', () => {
    const text = formatTraceCheck(check(example, resumed));
    expect(text).toBe('trace check OK: trace.jsonl matches expected.json ("a resume that never fell back"): 14 states in 0.951s');
  });

  it('puts the expected items beside the entries they took, with ">" where the match stopped', () => {
    const lines = formatTraceCheck(check(example, fellBack)).split('\n');
    expect(lines[0]).toBe('trace check FAILED: trace.jsonl does not match expected.json ("a resume that never fell back")');
    expect(lines).toContainEqual(expect.stringMatching(/^ {4} 5 {2}resume\.\* +#5 +\+0\.030s {2}resume\.preparing$/));
    // The glob's other entries sit under it with an empty expected column.
    expect(lines).toContainEqual(expect.stringMatching(/^ {4} {31,}#6 +\+0\.032s {2}resume\.stopping$/));
    const marked = lines.filter((line) => line.startsWith('  >'));
    expect(marked).toHaveLength(1);
    expect(marked[0]).toMatch(/^ {2}> +6 {2}resume\.rotating \(maxMs 5000\) +#8 +\+0\.034s {2}start\.settingAside +<- diverges here$/);
    // After the marker, the rest of each list, side by side.
    const after = lines.slice(lines.indexOf(marked[0] as string) + 1);
    expect(after[0]).toMatch(/ 7 {2}\.\.\. +#9 .*start\.coldBoot/);
    expect(after[1]).toMatch(/ 8 {2}start\.running +#10 .*coldBoot\.launching/);
    expect(after[2]).toMatch(/^ {2}! {30,}#11 .*coldBoot\.booting/);
    // Absent entries carry a note where they show.
    expect(lines.find((line) => line.includes('coldBoot.launching'))).toContain('<- must be absent: "coldBoot.*"');
    expect(lines).toContain('3 problems:');
    expect(lines.some((line) => line.startsWith('  - expected item 6 "resume.rotating"'))).toBe(true);
  });

  it('marks an item over its bound when the sequence itself matched', () => {
    const states = [...START, 'start.resume', 'resume.*', { state: 'resume.rotating', maxMs: 500 }, '...', 'start.running'];
    const text = formatTraceCheck(check({ states }, resumed));
    expect(text).toMatch(/ {2}! +6 {2}resume\.rotating \(maxMs 500\) +#10 .*resume\.rotating +<- 740 ms, over maxMs 500/);
    expect(text).not.toContain('diverges here');
  });

  it('says where either list ended', () => {
    expect(formatTraceCheck(check({ states: ['start.preflight', 'start.image'] }, resumed.slice(0, 1)))).toMatch(/> +1 {2}start\.image +\(end of trace\)/);
    expect(formatTraceCheck(check({ states: ['start.preflight'] }, resumed.slice(0, 2)))).toMatch(/> \(end of expected list\) +#1 .*start\.image/);
  });
});

describe('parseExpectedTrace', () => {
  function invalid(value: unknown): string {
    try {
      validateExpectedTrace(value, 'expect.json');
    } catch (error) {
      expect(error).toBeInstanceOf(WarmvmError);
      expect((error as WarmvmError).code).toBe('E_EXPECTED_TRACE');
      return (error as Error).message;
    }
    throw new Error('expected the expected trace to be refused');
  }

  it('reads every field', () => {
    expect(parseExpectedTrace(JSON.stringify(example), 'expect.json')).toEqual({
      source: 'expect.json',
      description: 'a resume that never fell back',
      states: [...[...START, 'start.resume', 'resume.*'].map((state) => ({ state })), { state: 'resume.rotating', maxMs: 5000 }, { state: '...' }, { state: 'start.running' }],
      absent: ['coldBoot.*', 'start.settingAside'],
      maxTotalMs: 20000,
    });
    expect(parseExpectedTrace('{"states": [{"state": "start.x", "optional": true}]}', 'e.json').states).toEqual([{ state: 'start.x', optional: true }]);
  });

  it('names the file when it is not JSON', () => {
    expect(() => parseExpectedTrace('{"states": [', 'ci/expect.json')).toThrow(/^ci\/expect\.json is not valid JSON/);
  });

  it('names unknown fields and wrong types', () => {
    expect(invalid({ states: ['start.a'], maxTotal: 5 })).toContain('"maxTotal" is not a known field (known: description, states, absent, maxTotalMs)');
    expect(invalid({ states: ['start.a'], name: 'x', version: 1 })).toContain('"name", "version" are not known fields (known: description, states, absent, maxTotalMs)');
    expect(invalid({ states: ['start.a'], description: 3 })).toContain('"description" must be a string (got 3)');
    expect(invalid({ states: ['start.a'], maxTotalMs: -1 })).toContain('"maxTotalMs" must be a number of milliseconds >= 0 (got -1)');
    expect(invalid({ states: 'start.a' })).toContain('"states" must be a list of patterns (got "start.a")');
    expect(invalid({})).toContain('"states" must be a list of patterns (got nothing)');
    expect(invalid([])).toContain('the top level must be an object');
    expect(invalid({ states: ['start.a'], absent: 'coldBoot.*' })).toContain('"absent" must be a list of patterns');
  });

  it('refuses an empty states list', () => {
    expect(invalid({ states: [] })).toContain('"states" must not be empty');
  });

  it('names the bad field of an item', () => {
    expect(invalid({ states: ['start.a', { state: 'start.b', maxMs: '5s' }] })).toContain('"states[1].maxMs" must be a number of milliseconds >= 0 (got "5s")');
    expect(invalid({ states: [{ state: 'start.b', optional: 'yes' }] })).toContain('"states[0].optional" must be true or false');
    expect(invalid({ states: [{ state: 5 }] })).toContain('"states[0].state" must be a string (got 5)');
    expect(invalid({ states: [{ state: 'start.b', max: 5 }] })).toContain('"states[0].max" is not a known field (known: state, maxMs, optional)');
    expect(invalid({ states: [{ state: '...', maxMs: 5 }] })).toContain('"states[0]" is "...", which takes neither maxMs nor optional');
    expect(invalid({ states: [7] })).toContain('"states[0]" must be a pattern or {"state", "maxMs"?, "optional"?} (got 7)');
  });

  it('refuses what is not a pattern', () => {
    expect(invalid({ states: ['resume'] })).toContain('"states[0]" "resume" is not a full state path');
    expect(invalid({ states: ['resume.*.x'] })).toContain('"states[0]" "resume.*.x" is not a state path');
    expect(invalid({ states: ['*'] })).toContain('"states[0]" "*" is not a state path');
    expect(invalid({ states: ['start..a'] })).toContain('"start..a" is not a state path');
    expect(invalid({ states: ['...'], absent: ['...'] })).toContain('"absent[0]" must be a state path or "prefix.*"');
    expect(invalid({ states: ['...'], absent: ['coldBoot'] })).toContain('"absent[0]" "coldBoot" is not a full state path');
  });

  it('lists every problem at once', () => {
    const message = invalid({ states: ['resume', { state: 'a.b', maxMs: -2 }], extra: 1 });
    expect(message.split('\n').filter((line) => line.startsWith('  - '))).toHaveLength(3);
  });
});

describe('the expected traces in test/traces against recorded runs', () => {
  const traces = join(projectRoot(), 'test', 'traces');
  const load = async (expected: string, run: string): Promise<TraceCheckResult> => {
    const spec = parseExpectedTrace(await readFile(join(traces, expected), 'utf8'), expected);
    return checkTrace(spec, parseTraceLines(await readFile(join(traces, 'runs', run), 'utf8'), run), { actualSource: run });
  };

  it('resume.json matches a resume and refuses the corrupt-snapshot fallback at the right place', async () => {
    expect((await load('resume.json', 'resume.jsonl')).ok).toBe(true);
    expect((await load('resume.json', 'first-start.jsonl')).ok).toBe(false);
    const fallback = await load('resume.json', 'corrupt-snapshot-fallback.jsonl');
    const problem = fallback.problems[0];
    expect(problem?.kind).toBe('sequence');
    expect(problem?.message).toContain('expected item 7 "resume.launching", but the trace has entry #7 "resume.stopping"');
    expect(problem?.message).toContain('E_SNAPSHOT_CORRUPT the compressed state');
  });

  it('first-start.json matches a first start only', async () => {
    expect((await load('first-start.json', 'first-start.jsonl')).ok).toBe(true);
    expect((await load('first-start.json', 'resume.jsonl')).ok).toBe(false);
    expect((await load('first-start.json', 'corrupt-snapshot-fallback.jsonl')).ok).toBe(false);
  });
});
