import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths } from '../../adapters/instance/paths.js';
import { projectRoot } from '../../adapters/support/project-root.js';
import { placeExchangeLines } from '../../adapters/trace/exchanges.js';
import { parseTraceLines } from '../../adapters/trace/file.js';
import { traceSpans, type TraceSpans } from '../../adapters/trace/spans.js';
import { cli, E2E_HOME, type CliResult } from '../helpers/cli.js';
import { expectOtlpSpansMatch } from '../helpers/otlp.js';
import { closedPort, startOtlpReceiver } from '../helpers/otlp-receiver.js';
import { caseConfig, removeSnapshotsCapturedBy } from '../helpers/store-check.js';

// `start` with OTEL_EXPORTER_OTLP_ENDPOINT: a real start of the demo guest on real QEMU sends its
// spans over OTLP/HTTP to a receiver here (node:http on 127.0.0.1), which decodes them with the
// official .proto files; a receiver that refuses them, or none at all, costs only a warning.
const TIMEOUT = 300_000;
const NAME = 'otel-main';
let config: string;

async function start(env: Record<string, string>): Promise<CliResult> {
  const result = await cli(['start', '--name', NAME, '--json', '--config', config], env);
  expect(result.json.outcome, result.stderr + result.stdout).toBe('healthy');
  expect(result.exitCode).toBe(0);
  return result;
}

/** The spans the instance's trace makes, as `trace export --otlp` would write them. */
async function traceOf(name: string): Promise<TraceSpans> {
  const text = await readFile(instancePaths(E2E_HOME, name).traceFile, 'utf8');
  return traceSpans(parseTraceLines(text, name), placeExchangeLines(text), { instance: name });
}

describe('OpenTelemetry spans from a real start', () => {
  beforeAll(async () => {
    await cli(['stop', '--name', NAME]);
    await cli(['reset', '--name', NAME, '--snapshot']);
    await removeSnapshotsCapturedBy([NAME]);
    config = await caseConfig(NAME);
    const built = await cli(['guest', 'build', '--json']);
    expect(built.exitCode, built.stderr).toBe(0);
  }, 900_000);

  afterAll(async () => {
    await cli(['stop', '--name', NAME]);
    await removeSnapshotsCapturedBy([NAME]);
  });

  it(
    "a first start sends its span tree, the trace's, in one OTLP/HTTP protobuf request, with the headers asked for",
    async () => {
      const receiver = await startOtlpReceiver();
      try {
        const result = await start({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`, OTEL_EXPORTER_OTLP_HEADERS: 'x-warmvm-test=otel%20e2e' });
        expect(result.json.warnings).toEqual([]);
        expect(result.stderr).not.toContain('WARNING');
        expect(receiver.requests).toHaveLength(1);
        const [request] = receiver.requests;
        expect(request).toMatchObject({ method: 'POST', path: '/v1/traces', headers: { 'content-type': 'application/x-protobuf', 'x-warmvm-test': 'otel e2e' } });
        const version = (JSON.parse(await readFile(`${projectRoot()}/package.json`, 'utf8')) as { version: string }).version;
        expect(request?.resource).toMatchObject({ 'service.name': 'warmvm', 'service.version': version });
        expect(request?.scopes).toEqual(['warmvm.trace']);

        const expected = await traceOf(NAME);
        expectOtlpSpansMatch(request?.spans ?? [], expected);
        // The tree itself, read from what arrived: a first start's three machines under the states that invoked them.
        const spans = request?.spans ?? [];
        const byName = (name: string) => spans.find((span) => span.name === name);
        const root = spans.find((span) => !span.parentSpanId);
        expect(root?.name).toBe('warmvm start');
        for (const [machine, parent] of [
          ['coldBoot', 'start.coldBoot'],
          ['capture', 'start.capture'],
          ['resume', 'start.resume'],
        ]) {
          const children = spans.filter((span) => span.name.startsWith(`${machine}.`));
          expect(children.length, machine).toBeGreaterThan(2);
          for (const child of children) expect(child.parentSpanId, child.name).toBe(byName(parent as string)?.spanId);
        }
        const exchanges = spans.flatMap((span) => (span.events ?? []).filter((event) => event.name.startsWith('qmp ') || event.name.startsWith('health ')));
        expect(exchanges.length).toBeGreaterThan(0);
      } finally {
        await receiver.close();
        await cli(['stop', '--name', NAME]);
      }
    },
    TIMEOUT,
  );

  it(
    'a receiver answering 500: the start is healthy, exits 0, and says so in a warning',
    async () => {
      const receiver = await startOtlpReceiver(500);
      try {
        const result = await start({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}` });
        expect(receiver.requests.length).toBeGreaterThan(0);
        const warnings = result.json.warnings as string[];
        expect(warnings.filter((warning) => warning.startsWith("the run's spans were not sent to the OTLP endpoint"))).toHaveLength(1);
        expect(result.stderr).toContain("warmvm: WARNING: the run's spans were not sent to the OTLP endpoint");
      } finally {
        await receiver.close();
        await cli(['stop', '--name', NAME]);
      }
    },
    TIMEOUT,
  );

  it(
    'no receiver at the traces endpoint: the start is healthy, exits 0, with a warning',
    async () => {
      const port = await closedPort();
      try {
        const result = await start({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces` });
        const warnings = result.json.warnings as string[];
        expect(warnings.filter((warning) => warning.startsWith("the run's spans were not sent to the OTLP endpoint"))).toHaveLength(1);
        expect(result.stderr).toContain("warmvm: WARNING: the run's spans were not sent");
      } finally {
        await cli(['stop', '--name', NAME]);
      }
    },
    TIMEOUT,
  );
});
