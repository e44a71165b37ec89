import { readFile } from 'node:fs/promises';
import { WarmvmError } from '../support/errors.js';
import type { TraceRecord } from './record.js';

/** How readTraceFile words its errors. */
export interface ReadTraceOptions {
  /** The instance the file belongs to, so a missing file's hint can name the command that writes it. */
  instance?: string;
}

/**
 * Reads trace.jsonl: the entries that have a `state`, in file order. Lines without one are
 * skipped (room for other kinds of line later); a line that is not JSON is an error, except an
 * unterminated last line, which a run still writing may leave.
 */
export async function readTraceFile(path: string, options: ReadTraceOptions = {}): Promise<TraceRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new WarmvmError('E_TRACE_MISSING', `there is no trace at ${path}`, {
        hint:
          options.instance === undefined
            ? 'check the path: every run writes $WARMVM_HOME/instances/<name>/trace.jsonl'
            : `run "warmvm start --name ${options.instance}" first: every run writes its trace there`,
      });
    }
    throw new WarmvmError('E_TRACE_UNREADABLE', `cannot read the trace ${path}`, { hint: 'check that it is a file you can read', cause });
  }
  return parseTraceLines(text, path);
}

/** The parsing half of readTraceFile, for text already in hand; `source` names it in errors. */
export function parseTraceLines(text: string, source: string): TraceRecord[] {
  const lines = text.split('\n');
  const entries: TraceRecord[] = [];
  for (const [index, line] of lines.entries()) {
    if (line.trim() === '') continue;
    const isLast = index === lines.length - 1;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      // The last piece has no newline after it: a write in progress, not a damaged file.
      if (isLast) break;
      throw badLine(source, index + 1, `is not JSON (${(cause as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    const record = value as Record<string, unknown>;
    if (typeof record.state !== 'string') continue;
    if (typeof record.at !== 'number' || !Number.isFinite(record.at)) throw badLine(source, index + 1, 'has a state but no number "at"');
    entries.push({
      ...record,
      at: record.at,
      state: record.state,
      machine: typeof record.machine === 'string' ? record.machine : (record.state.split('.')[0] ?? record.state),
      from: typeof record.from === 'string' ? record.from : undefined,
      ms: typeof record.ms === 'number' ? record.ms : undefined,
      event: typeof record.event === 'object' && record.event !== null ? (record.event as Record<string, unknown>) : {},
      warning: typeof record.warning === 'string' ? record.warning : undefined,
    });
  }
  return entries;
}

function badLine(source: string, line: number, problem: string): WarmvmError {
  return new WarmvmError('E_TRACE_BAD_LINE', `${source}:${line} ${problem}`, {
    hint: 'each line of a trace is one JSON object; was the file edited or written by something else?',
  });
}
