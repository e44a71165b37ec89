import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { expect } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { projectRoot } from '../../adapters/support/project-root.js';
import { checkTrace } from '../../adapters/trace/check/check.js';
import { parseExpectedTrace, type ExpectedTrace } from '../../adapters/trace/check/expected.js';
import { formatTraceCheck } from '../../adapters/trace/check/report.js';
import type { TraceRecord } from '../../adapters/trace/record.js';
import { readTraceFile } from '../../adapters/trace/file.js';
import { cli, E2E_HOME } from './cli.js';

/** Where the expected traces live; a bare file name is taken from here. */
export const EXPECTED_TRACES = join(projectRoot(), 'test', 'traces');

export function expectedTracePath(file: string): string {
  return isAbsolute(file) ? file : join(EXPECTED_TRACES, file);
}

export async function loadExpectedTrace(file: string): Promise<ExpectedTrace> {
  const path = expectedTracePath(file);
  return parseExpectedTrace(await readFile(path, 'utf8'), relative(projectRoot(), path));
}

/**
 * The same states, absences and order, with every time bound multiplied: for a guest that does
 * more than the demo guest in the same states (the Debian profile rotates through `docker exec`).
 */
export async function loadExpectedTraceScaled(file: string, factor: number): Promise<ExpectedTrace> {
  const expected = await loadExpectedTrace(file);
  return {
    ...expected,
    states: expected.states.map((item) => (item.maxMs === undefined ? item : { ...item, maxMs: item.maxMs * factor })),
    maxTotalMs: expected.maxTotalMs === undefined ? undefined : expected.maxTotalMs * factor,
  };
}

/**
 * Fails the test with `warmvm trace check`'s own diff unless the instance's current trace.jsonl
 * (its last run: check before the next command archives it) matches `expected`, a file in
 * test/traces or an already parsed expected trace. Returns the entries for further checks.
 */
export async function expectTraceMatches(instance: string, expected: string | ExpectedTrace, home = E2E_HOME): Promise<TraceRecord[]> {
  const spec = typeof expected === 'string' ? await loadExpectedTrace(expected) : expected;
  const traceFile = instancePaths(home, instance).traceFile;
  const entries = await readTraceFile(traceFile, { instance });
  const result = checkTrace(spec, entries, { actualSource: traceFile });
  if (!result.ok) throw new Error(`the trace of "${instance}" differs from the expected one:\n${formatTraceCheck(result)}`);
  return entries;
}

/** `warmvm stop` of a running instance: it must stop it, and its own trace must be stop.json's. */
export async function stopAndCheckTrace(instance: string): Promise<Record<string, unknown>> {
  const stopped = await cli(['stop', '--name', instance, '--json']);
  expect(stopped.json, `stop of "${instance}": ${stopped.stderr}`).toMatchObject({ name: instance, outcome: 'stopped' });
  await expectTraceMatches(instance, 'stop.json');
  return stopped.json;
}
