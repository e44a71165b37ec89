/** A trace entry's event in words, as `trace show`, `trace check` and the inspector print it. */

const MAX_VALUE_CHARS = 48;
const MAX_FIELDS = 3;

/** `+1.234s`. */
export function formatOffset(ms: number): string {
  return `+${(ms / 1000).toFixed(3)}s`;
}

/**
 * A short line for an event: `init`, `done resume.preparing: pid 42`,
 * `error resume.preparing: E_SNAPSHOT_CORRUPT …`, `after 30000 ms`, `Ctrl-C`.
 */
export function describeEvent(event: Record<string, unknown>): string {
  const type = typeof event.type === 'string' ? event.type : '(no type)';
  const error = describeError(event.error);
  const output = 'output' in event ? describeOutput(event.output) : undefined;
  let head: string;
  if (type === 'xstate.init') head = 'init';
  else if (type === 'CANCEL') head = 'Ctrl-C';
  else if (type.startsWith('xstate.done.actor.')) head = `done ${actorName(type.slice('xstate.done.actor.'.length))}`;
  else if (type.startsWith('xstate.error.actor.')) head = `error ${actorName(type.slice('xstate.error.actor.'.length))}`;
  else if (type.startsWith('xstate.after.')) head = `after ${delayName(type.slice('xstate.after.'.length))}`;
  else head = type;
  const detail = error ?? output;
  return detail === undefined || detail === '' ? head : `${head}: ${detail}`;
}

/** The error's code and whole message: they are what a person debugging needs, never cut. */
export function describeError(error: unknown): string | undefined {
  if (error === undefined || error === null) return undefined;
  if (typeof error !== 'object') return String(error);
  const { code, message } = error as { code?: unknown; message?: unknown };
  const parts = [code, message].filter((part) => part !== undefined && part !== null).map(String);
  return parts.length > 0 ? parts.join(' ') : JSON.stringify(error);
}

/** XState names an invoked actor `<index>.<state id>` unless it was given an id: drop the index. */
function actorName(id: string): string {
  return id.replace(/^\d+\./, '');
}

/** `30000.resume.incoming` → `30000 ms`; a named delay keeps its name: `healthBound`. */
function delayName(rest: string): string {
  const delay = rest.split('.')[0] ?? rest;
  return /^\d+$/.test(delay) ? `${delay} ms` : delay;
}

function describeOutput(output: unknown): string | undefined {
  if (output === undefined || output === null) return undefined;
  if (Array.isArray(output)) {
    const statuses = output.map((item) => (typeof item === 'object' && item !== null ? (item as { status?: unknown }).status : undefined));
    if (output.length > 0 && statuses.every((status) => status !== undefined)) return `HTTP ${statuses.map((status) => status ?? 'no answer').join(', ')}`;
    return `${output.length} item${output.length === 1 ? '' : 's'}`;
  }
  if (typeof output !== 'object') return shorten(String(output));
  const record = output as Record<string, unknown>;
  // A child machine's result: its outcome first, then why it failed.
  if (typeof record.outcome === 'string') {
    const failure = record.failure as { state?: unknown; code?: unknown; message?: unknown } | undefined;
    if (failure) return `${record.outcome} in ${String(failure.state ?? '?')}: ${describeError(failure)}`;
    const health = Array.isArray(record.health) ? describeOutput(record.health) : undefined;
    return [record.outcome, typeof record.pid === 'number' ? `pid ${record.pid}` : undefined, health].filter(Boolean).join(', ');
  }
  const fields = Object.entries(record)
    .filter(([, value]) => value === null || typeof value !== 'object')
    .slice(0, MAX_FIELDS)
    .map(([key, value]) => `${key} ${shorten(String(value))}`);
  return fields.join(', ');
}

function shorten(text: string): string {
  return text.length <= MAX_VALUE_CHARS ? text : `${text.slice(0, MAX_VALUE_CHARS - 1)}…`;
}
