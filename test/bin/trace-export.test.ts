import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../adapters/support/project-root.js';
import { placeExchangeLines } from '../../adapters/trace/exchanges.js';
import { parseTraceLines } from '../../adapters/trace/file.js';
import { traceSpans } from '../../adapters/trace/spans.js';
import { cli } from '../helpers/cli.js';
import { expectOtlpSpansMatch, type OtlpSpan } from '../helpers/otlp.js';
import { useTempDirs } from '../helpers/temp.js';

// `warmvm trace export --otlp` through the built CLI (npm test builds first), on temp files.
const temp = useTempDirs();
const runs = join(projectRoot(), 'test', 'traces', 'runs');
const version = (JSON.parse(await readFile(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;

interface OtlpFile {
  resourceSpans: { resource: { attributes: { key: string; value: Record<string, unknown> }[] }; scopeSpans: { scope: { name: string }; spans: OtlpSpan[] }[] }[];
}

async function spansOf(run: string, instance?: string) {
  const text = await readFile(join(runs, `${run}.jsonl`), 'utf8');
  return traceSpans(parseTraceLines(text, run), placeExchangeLines(text), { instance });
}

describe('warmvm trace export --otlp', () => {
  it("writes the instance's trace as one OTLP JSON ExportTraceServiceRequest whose spans are the trace's", async () => {
    const home = await temp();
    await mkdir(join(home, 'instances', 'web'), { recursive: true });
    await writeFile(join(home, 'instances', 'web', 'trace.jsonl'), await readFile(join(runs, 'fallback-rotate-failed-twice.jsonl')));
    const out = join(await temp(), 'web.otlp.json');
    const result = await cli(['trace', 'export', '--otlp', out, '--name', 'web', '--json'], { WARMVM_HOME: home });
    expect(result.exitCode, result.stderr).toBe(0);
    const expected = await spansOf('fallback-rotate-failed-twice', 'web');
    expect(result.json).toMatchObject({ name: 'web', otlp: out, traceId: expected.traceId, spans: expected.spans.length });

    const file = JSON.parse(await readFile(out, 'utf8')) as OtlpFile;
    expect(file.resourceSpans).toHaveLength(1);
    const [resourceSpans] = file.resourceSpans;
    expect(resourceSpans?.resource.attributes).toEqual(
      expect.arrayContaining([
        { key: 'service.name', value: { stringValue: 'warmvm' } },
        { key: 'service.version', value: { stringValue: version } },
      ]),
    );
    expect(resourceSpans?.scopeSpans).toHaveLength(1);
    expect(resourceSpans?.scopeSpans[0]?.scope.name).toBe('warmvm.trace');
    expectOtlpSpansMatch(resourceSpans?.scopeSpans[0]?.spans ?? [], expected);
    // Nothing left beside it: written beside and renamed.
    expect(await readdir(join(out, '..'))).toEqual(['web.otlp.json']);
  });

  it('takes a trace file instead, and says what it wrote', async () => {
    const out = join(await temp(), 'resume.json');
    const result = await cli(['trace', 'export', join(runs, 'resume.jsonl'), '--otlp', out], { WARMVM_HOME: await temp() });
    expect(result.exitCode, result.stderr).toBe(0);
    const expected = await spansOf('resume');
    expect(result.stdout).toContain(`wrote 16 spans (trace ${expected.traceId})`);
    const file = JSON.parse(await readFile(out, 'utf8')) as OtlpFile;
    expectOtlpSpansMatch(file.resourceSpans[0]?.scopeSpans[0]?.spans ?? [], expected);
  });

  it('names the fix for a missing trace and an unwritable file', async () => {
    const home = await temp();
    const missing = await cli(['trace', 'export', '--otlp', join(home, 'out.json'), '--name', 'nothing', '--json'], { WARMVM_HOME: home });
    expect(missing.exitCode).toBe(1);
    expect(missing.json).toMatchObject({ error: { code: 'E_TRACE_MISSING', hint: 'run "warmvm start --name nothing" first: every run writes its trace there' } });
    const unwritable = await cli(['trace', 'export', join(runs, 'resume.jsonl'), '--otlp', join(home, 'no', 'such', 'out.json'), '--json'], { WARMVM_HOME: home });
    expect(unwritable.exitCode).toBe(1);
    expect(unwritable.json).toMatchObject({ error: { code: 'E_OTLP_WRITE', message: expect.stringContaining('ENOENT') } });
  });
});
