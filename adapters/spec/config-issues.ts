import * as z from 'zod/mini';
import { WarmvmError } from '../support/errors.js';

/** One wrong field of a config: its path (`ports[1].guest`), what is wrong with it, and what helps fix it. */
export interface ConfigProblem {
  field: string;
  problem: string;
  /** The fix when it is more than "fix the field". */
  hint?: string;
  /** A right value, from the field's `examples` in the schema (editors offer the same ones). */
  example?: unknown;
  /** The field is not one the schema knows. */
  unknown?: boolean;
}

/** How many wrong fields an error lists; the rest are counted. */
const LISTED = 10;

/**
 * The error for a config the schema refused: every wrong field, one line each (a person fixes
 * them all in one go instead of one per run), the first line in the shape of any config error.
 */
export function configError(file: string, schema: z.ZodMiniType, value: unknown, issues: readonly z.core.$ZodIssue[]): WarmvmError {
  const problems = configProblems(schema, value, issues);
  const forExample = (problem: ConfigProblem): string | undefined => (problem.example === undefined ? undefined : `for example ${JSON.stringify(problem.example)}`);
  const first = problems[0] ?? { field: '(top level)', problem: 'is not a valid config' };
  if (problems.length <= 1) {
    const example = forExample(first);
    const hint = first.hint ?? `fix "${first.field}" in ${file}${example ? `, ${example}` : ''}; see "Config file" in the README`;
    return new WarmvmError('E_CONFIG', `config ${file}: field "${first.field}" ${first.problem}`, { hint });
  }
  const lines = problems.slice(0, LISTED).map((problem) => {
    const note = problem.hint ?? forExample(problem);
    return `field "${problem.field}" ${problem.problem}${note ? ` (${note})` : ''}`;
  });
  if (problems.length > LISTED) lines.push(`and ${problems.length - LISTED} more`);
  return new WarmvmError('E_CONFIG', `config ${file}: ${lines.join('\n  ')}`, {
    hint: `fix these ${problems.length} fields in ${file}; see "Config file" in the README`,
  });
}

/**
 * Zod's issues as config problems, one per field: unknown fields first (a misspelt field is
 * also a missing one, and the typo is the fix), a union's issues taken from the branch the
 * value meant (`configSchema` names each branch by its first field), the hint from the
 * field's `examples` when it has some.
 */
export function configProblems(schema: z.ZodMiniType, value: unknown, issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  collect(schema, value, issues, [], problems);
  const seen = new Set<string>();
  const unique = problems.filter((problem) => !seen.has(problem.field) && seen.add(problem.field));
  return [...unique.filter((problem) => problem.unknown), ...unique.filter((problem) => !problem.unknown)];
}

type Path = readonly PropertyKey[];

/** Issues relative to `schema` (and `value`, the input it was given), which sits at `prefix` in the config. */
function collect(schema: z.ZodMiniType, value: unknown, issues: readonly z.core.$ZodIssue[], prefix: Path, into: ConfigProblem[]): void {
  for (const issue of issues) {
    const path = issue.path;
    // Zod reports a union's issues itself when only one branch got far enough, so any path may cross a union.
    const found = walk(schema, value, path);
    if (found.exclusive) {
      const field = fieldName([...prefix, ...found.exclusive.at]);
      const [a, b] = found.exclusive.keys;
      into.push({ field, problem: `names both "${a}" and "${b}", which exclude each other`, hint: `keep "${a}" or "${b}" in "${field}", not both` });
      continue;
    }
    const at = (where: Path, problem: string, unknown = false): void => {
      into.push({ field: fieldName([...prefix, ...where]), problem, example: exampleOf(walk(schema, value, where).schema), unknown });
    };
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) at([...path, key], issue.message, true);
    } else if (issue.code === 'invalid_key') {
      // A record's key: its own schema's message ("is not a NAME …") is the one to show.
      at(path, issue.issues[0]?.message ?? issue.message);
    } else if (issue.code === 'invalid_union' && found.branch !== undefined) {
      collect(found.schema as z.ZodMiniType, valueAt(value, path), issue.errors[found.branch] ?? [], [...prefix, ...path], into);
    } else {
      at(path, issue.message);
    }
  }
}

/**
 * Follows a path through the schema and the value together, into the branch of each union the
 * value meant; `branch` is the one taken by a union at the path's end. Stops at two fields
 * that exclude each other.
 */
function walk(schema: z.ZodMiniType, value: unknown, path: Path): { schema: z.ZodMiniType | undefined; branch?: number; exclusive?: { at: Path; keys: [string, string] } } {
  let current: z.ZodMiniType | undefined = schema;
  let here = value;
  for (let depth = 0; ; depth += 1) {
    let inner = unwrap(current);
    let branch: number | undefined;
    if (inner instanceof z.ZodMiniUnion) {
      const choice = branchMeant(inner.def.options as readonly z.ZodMiniType[], here);
      if (choice?.exclusive) return { schema: undefined, exclusive: { at: path.slice(0, depth), keys: choice.exclusive } };
      if (choice) [current, inner, branch] = [choice.branch, unwrap(choice.branch), choice.index];
    }
    const key = path[depth];
    if (key === undefined) return { schema: current, branch };
    if (inner instanceof z.ZodMiniObject) current = (inner.shape as Record<PropertyKey, z.ZodMiniType>)[key];
    else if (inner instanceof z.ZodMiniArray) current = inner.def.element as z.ZodMiniType;
    else if (inner instanceof z.ZodMiniRecord) current = inner.def.valueType as z.ZodMiniType;
    else return { schema: undefined };
    here = valueAt(here, [key]);
  }
}

/**
 * The branch of a union a value meant: the first object branch whose first field the value has
 * (an image with "disk" is a disk image), or the only object branch when the value is an object.
 * Two such fields that no one branch takes together exclude each other ("url" and "disk").
 */
function branchMeant(
  options: readonly z.ZodMiniType[],
  value: unknown,
): { branch: z.ZodMiniType; index: number; exclusive?: undefined } | { exclusive: [string, string] } | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const objects = options.flatMap((option, index) => {
    const inner = unwrap(option);
    return inner instanceof z.ZodMiniObject ? [{ option, index, shape: inner.shape as Record<string, z.ZodMiniType>, key: Object.keys(inner.shape)[0] ?? '' }] : [];
  });
  const named = objects.filter((object) => Object.hasOwn(value, object.key));
  const meant = named[0] ?? (objects.length === 1 ? objects[0] : undefined);
  if (meant === undefined) return undefined;
  const other = named.find((object) => !Object.hasOwn(meant.shape, object.key));
  if (other) return { exclusive: [meant.key, other.key] };
  return { branch: meant.option, index: meant.index };
}

function unwrap(schema: z.ZodMiniType | undefined): z.ZodMiniType | undefined {
  let current = schema;
  while (current instanceof z.ZodMiniOptional) current = current.def.innerType as z.ZodMiniType;
  return current;
}

function valueAt(value: unknown, path: Path): unknown {
  let here = value;
  for (const key of path) here = typeof here === 'object' && here !== null ? (here as Record<PropertyKey, unknown>)[key] : undefined;
  return here;
}

/** The field's first example in the schema, on the field or on what its optional wraps. */
function exampleOf(field: z.ZodMiniType | undefined): unknown {
  for (let current = field; current !== undefined; current = current instanceof z.ZodMiniOptional ? (current.def.innerType as z.ZodMiniType) : undefined) {
    const examples = z.globalRegistry.get(current)?.examples;
    if (Array.isArray(examples) && examples.length > 0) return examples[0];
  }
  return undefined;
}

/** `ports[1].guest`, `settings.FOO`; the whole file is `(top level)`. */
export function fieldName(path: Path): string {
  if (path.length === 0) return '(top level)';
  return path.map((key, index) => (typeof key === 'number' ? `[${key}]` : `${index === 0 ? '' : '.'}${String(key)}`)).join('');
}
