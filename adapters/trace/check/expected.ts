import { WarmvmError } from '../../support/errors.js';

/** The item that matches zero or more entries of anything. */
export const ANY = '...';

/** One item of an expected trace's `states`: a pattern, how long it may last, whether it may be absent. */
export interface ExpectedItem {
  /** A full state path (`resume.rotating`), `prefix.*` (one or more consecutive entries under prefix), or `...`. */
  state: string;
  /** Bound on the time spent in the matched state(s), summed over a glob's entries. */
  maxMs?: number;
  /** May match zero times. */
  optional?: boolean;
}

/** An expected trace, validated. */
export interface ExpectedTrace {
  /** Where it came from (a file name), for messages. */
  source: string;
  description?: string;
  states: ExpectedItem[];
  /** Patterns that must match no entry. */
  absent: string[];
  /** Bound on the last entry's `at`. */
  maxTotalMs?: number;
}

const TOP_KEYS = ['description', 'states', 'absent', 'maxTotalMs'];
const ITEM_KEYS = ['state', 'maxMs', 'optional'];
/** Segments of a state path: no dots, no `*`, no spaces. A glob is a path ending in `.*`. */
const PATTERN = /^[^.*\s]+(\.[^.*\s]+)*(\.\*)?$/;

/** Whether `pattern` (exact or `prefix.*`) matches a full state path. */
export function matchesState(pattern: string, state: string): boolean {
  return isGlob(pattern) ? state.startsWith(pattern.slice(0, -1)) : state === pattern;
}

/** Whether a pattern is `prefix.*`. */
export function isGlob(pattern: string): boolean {
  return pattern.endsWith('.*');
}

/** An item as written in messages: `"resume.rotating" (maxMs 5000, optional)`. */
export function describeItem(item: ExpectedItem): string {
  const notes = [item.maxMs === undefined ? undefined : `maxMs ${item.maxMs}`, item.optional ? 'optional' : undefined].filter(Boolean);
  return `"${item.state}"${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
}

/** Parses and validates an expected trace's JSON text; `source` names it in errors. */
export function parseExpectedTrace(text: string, source: string): ExpectedTrace {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new WarmvmError('E_EXPECTED_TRACE', `${source} is not valid JSON: ${(cause as Error).message}`, { hint: EXPECTED_HINT });
  }
  return validateExpectedTrace(value, source);
}

const EXPECTED_HINT = 'see "Traces" in the README, or "warmvm trace check --help", for the format';

/** Validates an already parsed expected trace, reporting every bad field at once. */
export function validateExpectedTrace(value: unknown, source: string): ExpectedTrace {
  const problems: string[] = [];
  const result: ExpectedTrace = { source, states: [], absent: [] };
  if (!isObject(value)) {
    problems.push(`the top level must be an object with "states" (got ${show(value)})`);
  } else {
    unknownKeys(value, TOP_KEYS, '', problems);
    if (value.description !== undefined) {
      if (typeof value.description === 'string') result.description = value.description;
      else problems.push(`"description" must be a string (got ${show(value.description)})`);
    }
    if (!Array.isArray(value.states)) problems.push(`"states" must be a list of patterns (got ${show(value.states)})`);
    else if (value.states.length === 0) problems.push('"states" must not be empty: give at least "..." to accept any trace');
    else
      value.states.forEach((item, index) => {
        const parsed = validateItem(item, `states[${index}]`, problems);
        if (parsed) result.states.push(parsed);
      });
    if (value.absent !== undefined) {
      if (!Array.isArray(value.absent)) problems.push(`"absent" must be a list of patterns (got ${show(value.absent)})`);
      else
        value.absent.forEach((pattern, index) => {
          const problem = typeof pattern === 'string' && pattern !== ANY ? patternProblem(pattern) : `must be a state path or "prefix.*" (got ${show(pattern)})`;
          if (problem) problems.push(`"absent[${index}]" ${problem}`);
          else result.absent.push(pattern as string);
        });
    }
    if (value.maxTotalMs !== undefined) {
      if (isDuration(value.maxTotalMs)) result.maxTotalMs = value.maxTotalMs;
      else problems.push(`"maxTotalMs" must be a number of milliseconds >= 0 (got ${show(value.maxTotalMs)})`);
    }
  }
  if (problems.length > 0) {
    throw new WarmvmError('E_EXPECTED_TRACE', `${source} is not a valid expected trace:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`, {
      hint: EXPECTED_HINT,
    });
  }
  return result;
}

function validateItem(item: unknown, field: string, problems: string[]): ExpectedItem | undefined {
  if (typeof item === 'string') {
    const problem = item === ANY ? undefined : patternProblem(item);
    if (problem) problems.push(`"${field}" ${problem}`);
    return problem ? undefined : { state: item };
  }
  if (!isObject(item)) {
    problems.push(`"${field}" must be a pattern or {"state", "maxMs"?, "optional"?} (got ${show(item)})`);
    return undefined;
  }
  const before = problems.length;
  unknownKeys(item, ITEM_KEYS, `${field}.`, problems);
  const { state, maxMs, optional } = item;
  if (typeof state !== 'string') problems.push(`"${field}.state" must be a string (got ${show(state)})`);
  else if (state === ANY && (maxMs !== undefined || optional !== undefined)) problems.push(`"${field}" is "...", which takes neither maxMs nor optional`);
  else if (state !== ANY) {
    const problem = patternProblem(state);
    if (problem) problems.push(`"${field}.state" ${problem}`);
  }
  if (maxMs !== undefined && !isDuration(maxMs)) problems.push(`"${field}.maxMs" must be a number of milliseconds >= 0 (got ${show(maxMs)})`);
  if (optional !== undefined && typeof optional !== 'boolean') problems.push(`"${field}.optional" must be true or false (got ${show(optional)})`);
  if (problems.length > before) return undefined;
  const parsed: ExpectedItem = { state: state as string };
  if (maxMs !== undefined) parsed.maxMs = maxMs as number;
  if (optional === true) parsed.optional = true;
  return parsed;
}

function unknownKeys(value: Record<string, unknown>, known: readonly string[], prefix: string, problems: string[]): void {
  const unknown = Object.keys(value).filter((key) => !known.includes(key));
  if (unknown.length === 0) return;
  const names = unknown.map((key) => `"${prefix}${key}"`).join(', ');
  problems.push(`${names} ${unknown.length === 1 ? 'is not a known field' : 'are not known fields'} (known: ${known.join(', ')})`);
}

/** Why a pattern is not one, or undefined. */
function patternProblem(pattern: string): string | undefined {
  if (!PATTERN.test(pattern)) return `"${pattern}" is not a state path (dot-separated names, optionally ending in ".*"), nor "..."`;
  if (!isGlob(pattern) && !pattern.includes('.')) {
    return `"${pattern}" is not a full state path: paths start with the machine id ("${pattern}.preparing"); "${pattern}.*" matches any state of that machine`;
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isDuration(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}
