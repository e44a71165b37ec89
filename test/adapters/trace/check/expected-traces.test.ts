import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../../../adapters/support/project-root.js';
import { checkTrace } from '../../../../adapters/trace/check/check.js';
import { parseExpectedTrace } from '../../../../adapters/trace/check/expected.js';
import { formatTraceCheck } from '../../../../adapters/trace/check/report.js';
import { parseTraceLines } from '../../../../adapters/trace/file.js';

// Every expected trace in test/traces against every run recorded from the e2e tests: it matches the
// runs of its own kind and refuses all others, so each one tells its run from the rest without QEMU.
const traces = join(projectRoot(), 'test', 'traces');

/**
 * The recorded runs each expected trace must match. Some kinds share a shape (the difference is in
 * an event, which the format does not look at): a mismatched manifest is set aside in choosing, so
 * its run is a first start's; a truncated or a corrupt snapshot file both fail in preparing; a failed rotate
 * command and a QEMU killed while rotating both fail in rotating.
 */
const MATCHES: Record<string, string[]> = {
  'cold.json': ['cold.jsonl'],
  'first-start.json': ['first-start.jsonl', 'fallback-mismatch.jsonl'],
  'resume.json': ['resume.jsonl'],
  'no-rotation.json': ['no-rotation.jsonl'],
  'stop.json': ['stop.jsonl'],
  'capture.json': ['capture.jsonl'],
  'capture-interrupted.json': ['capture-interrupted.jsonl'],
  'capture-kept.json': ['capture-kept.jsonl'],
  'fallback-truncated-memory.json': ['fallback-truncated-zst.jsonl', 'fallback-corrupt-zst.jsonl', 'corrupt-snapshot-fallback.jsonl'],
  'fallback-corrupt-memory.json': ['fallback-truncated-zst.jsonl', 'fallback-corrupt-zst.jsonl', 'corrupt-snapshot-fallback.jsonl'],
  'fallback-mismatch.json': ['fallback-mismatch.jsonl', 'first-start.jsonl'],
  'fallback-rotate-failed.json': ['fallback-rotate-failed.jsonl', 'fallback-qemu-killed-rotating.jsonl'],
  'fallback-rotate-failed-twice.json': ['fallback-rotate-failed-twice.jsonl'],
  'fallback-qemu-killed-rotating.json': ['fallback-qemu-killed-rotating.jsonl', 'fallback-rotate-failed.jsonl'],
  'fallback-qemu-killed-incoming.json': ['fallback-qemu-killed-incoming.jsonl'],
  'unhealthy.json': ['unhealthy.jsonl'],
  'interrupted-cold-boot.json': ['ctrl-c-cold-boot.jsonl'],
  'cold-crash-booted-again.json': ['cold-crash-booted-again.jsonl'],
};

describe('the expected traces in test/traces against the recorded runs', () => {
  it('lists every expected trace and every recorded run', async () => {
    expect((await readdir(traces)).filter((file) => file.endsWith('.json')).sort()).toEqual(Object.keys(MATCHES).sort());
    const recorded = (await readdir(join(traces, 'runs'))).sort();
    expect([...new Set(Object.values(MATCHES).flat())].sort()).toEqual(recorded);
  });

  for (const [expectedFile, own] of Object.entries(MATCHES)) {
    it(`${expectedFile} matches ${own.join(', ')} and no other run`, async () => {
      const expected = parseExpectedTrace(await readFile(join(traces, expectedFile), 'utf8'), expectedFile);
      for (const run of await readdir(join(traces, 'runs'))) {
        const result = checkTrace(expected, parseTraceLines(await readFile(join(traces, 'runs', run), 'utf8'), run), { actualSource: run });
        expect(result.ok, `${run}: ${formatTraceCheck(result)}`).toBe(own.includes(run));
      }
    });
  }
});
