import { readFile } from 'node:fs/promises';
import { WarmvmError } from '../../adapters/support/errors.js';
import { instancePaths } from '../../adapters/instance/paths.js';
import { checkTrace } from '../../adapters/trace/check/check.js';
import { parseExpectedTrace, type ExpectedTrace } from '../../adapters/trace/check/expected.js';
import { formatTraceCheck } from '../../adapters/trace/check/report.js';
import type { TraceRecord } from '../../adapters/trace/record.js';
import { readTraceFile } from '../../adapters/trace/file.js';
import { formatTimeline } from '../../adapters/trace/timeline.js';
import { diffTraces } from '../../adapters/trace/diff.js';
import { formatTraceDiff } from '../../adapters/trace/diff-text.js';
import { waterfallRows } from '../../adapters/trace/waterfall.js';
import { formatWaterfall, MIN_WATERFALL_WIDTH } from '../../adapters/trace/waterfall-text.js';
import type { Output } from '../output.js';
import { packageVersion } from '../version.js';

/** `trace check` exit codes: CI can tell a trace that differs from one that could not be checked. */
export const TRACE_MATCHED = 0;
export const TRACE_DIFFERS = 1;
export const TRACE_UNCHECKED = 2;

/** Which trace: a file given on the command line, else the instance's. */
export interface TraceSource {
  file: string | undefined;
  name: string;
  /** Whether --name was given (it has a default), so a FILE and --name together can be refused. */
  nameGiven: boolean;
  home: string;
}

/** How `trace show` draws: a timeline, or a waterfall `width` columns wide. */
export type ShowLayout = { kind: 'timeline' } | { kind: 'waterfall'; width: number };

/** How `trace show` draws, from its flags: `--width` alone draws nothing different, so it is refused rather than ignored. */
export function showLayout(waterfall: boolean, width: string | undefined, terminalColumns: number | undefined): ShowLayout {
  if (waterfall) return waterfallLayout(width, terminalColumns);
  if (width !== undefined)
    throw new WarmvmError('E_USAGE', '--width sets the width of the waterfall, and no --waterfall was given', {
      hint: `add --waterfall: warmvm trace show --waterfall --width ${width}`,
    });
  return { kind: 'timeline' };
}

/** The waterfall's width: `--width`, else the terminal's, else (a pipe) 100 columns. */
function waterfallLayout(width: string | undefined, terminalColumns: number | undefined): ShowLayout {
  if (width === undefined) return { kind: 'waterfall', width: terminalColumns ?? 100 };
  const columns = Number(width);
  if (!/^\d+$/.test(width) || columns < MIN_WATERFALL_WIDTH) {
    throw new WarmvmError('E_USAGE', `--width ${width} is not a number of columns of at least ${MIN_WATERFALL_WIDTH}`, { hint: 'give the columns as a whole number: --width 120' });
  }
  return { kind: 'waterfall', width: columns };
}

/** `warmvm trace show`: the trace as a timeline or a waterfall; with --json its entries, or the waterfall's rows. */
export async function traceShowCommand(options: TraceSource & { layout?: ShowLayout; output: Output }): Promise<number> {
  const { file, label } = resolveTrace(options);
  const entries = await readTraceFile(file, options.file === undefined ? { instance: options.name } : {});
  const layout = options.layout ?? { kind: 'timeline' };
  if (layout.kind === 'waterfall') {
    const rows = waterfallRows(entries);
    options.output.result({ ...label, file, rows }, formatWaterfall(rows, { width: layout.width }).join('\n'));
  } else {
    options.output.result({ ...label, file, entries }, formatTimeline(entries));
  }
  return 0;
}

/** `warmvm trace diff A B`: two runs state by state. A report, not a check: 0 when both were read, else TRACE_UNCHECKED. */
export async function traceDiffCommand(options: { a: string; b: string; output: Output }): Promise<number> {
  return orUnchecked(options.output, { a: options.a, b: options.b }, async () => {
    const entriesA = await readTraceFile(options.a);
    const entriesB = await readTraceFile(options.b);
    const diff = diffTraces(entriesA, entriesB);
    options.output.result({ ...diff, a: { file: options.a, ...diff.a }, b: { file: options.b, ...diff.b } }, formatTraceDiff(diff, { a: options.a, b: options.b }).join('\n'));
    return 0;
  });
}

/** `warmvm trace export --otlp FILE`: the trace as OpenTelemetry spans, an OTLP JSON file. */
export async function traceExportCommand(options: TraceSource & { otlp: string; output: Output }): Promise<number> {
  const { file, label } = resolveTrace(options);
  // Loaded only here: OpenTelemetry's packages are for this command and a start that sends spans.
  const [{ readTraceSpans }, { writeOtlpFile }] = await Promise.all([import('../../adapters/otel/from-trace.js'), import('../../adapters/otel/file.js')]);
  const { tree, spans } = await readTraceSpans(file, { instance: label.name, service: { version: packageVersion() } });
  await writeOtlpFile(options.otlp, spans);
  options.output.result(
    { ...label, file, otlp: options.otlp, traceId: tree.traceId, spans: spans.length },
    `warmvm: wrote ${spans.length} spans (trace ${tree.traceId}) of ${file} to ${options.otlp} as OTLP JSON`,
  );
  return 0;
}

/** `warmvm trace check`: the trace against an expected one; exits TRACE_MATCHED, TRACE_DIFFERS or TRACE_UNCHECKED. */
export async function traceCheckCommand(options: TraceSource & { expected: string; output: Output }): Promise<number> {
  return orUnchecked(options.output, { expected: options.expected }, async () => {
    const { file } = resolveTrace(options);
    const expected = await readExpected(options.expected);
    const entries: TraceRecord[] = await readTraceFile(file, options.file === undefined ? { instance: options.name } : {});
    const result = checkTrace(expected, entries, { actualSource: file });
    options.output.result({ ok: result.ok, expected: options.expected, actual: file, description: expected.description, problems: result.problems }, formatTraceCheck(result));
    return result.ok ? TRACE_MATCHED : TRACE_DIFFERS;
  });
}

function resolveTrace(options: TraceSource): { file: string; label: { name?: string } } {
  if (options.file !== undefined && options.nameGiven) {
    throw new WarmvmError('E_USAGE', `give either a trace file (${options.file}) or --name ${options.name}, not both`, {
      hint: "without a file, the instance's own trace.jsonl is read",
    });
  }
  if (options.file !== undefined) return { file: options.file, label: {} };
  return { file: instancePaths(options.home, options.name).traceFile, label: { name: options.name } };
}

async function readExpected(path: string): Promise<ExpectedTrace> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new WarmvmError('E_EXPECTED_TRACE', `cannot read the expected trace ${path}`, { hint: 'check the path of EXPECTED.json', cause });
  }
  return parseExpectedTrace(text, path);
}

/** Prints an error the way every command does, but exits 2: "could not check", not "differs". */
async function orUnchecked(output: Output, extra: Record<string, unknown>, command: () => Promise<number>): Promise<number> {
  try {
    return await command();
  } catch (error) {
    output.error(error, extra);
    return TRACE_UNCHECKED;
  }
}
