import * as z from 'zod/mini';

/**
 * Zod builders for the config's fields whose messages say what was expected and what was found
 * ("must be a whole number, got \"512\""): a config error reads the same whichever check failed,
 * and `config-issues.ts` only adds the field's path and the fix. zod/mini, not zod: loading it and
 * building the config's schema made the start command's chunk ~13 ms slower to load, against ~35 ms
 * with zod's classic API (its methods, and its locales when imported as `{ z }`).
 */

/** A value as a config error shows it: JSON, or `nothing` for a missing field. */
export function shown(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/** An address as an error shows it: without user info or query, which may hold credentials (a signed URL's token), even when it does not parse. */
export function shownAddress(value: unknown): string {
  if (typeof value !== 'string') return shown(value);
  return shown(value.replace(/^([^:/?#]*:\/\/)[^/?#]*@/, '$1…@').replace(/\?.*$/s, '?…'));
}

type Found = { input?: unknown };

/** What editors show of a field (description, default, examples), carried into the JSON Schema. */
export function about<T extends z.ZodMiniType>(schema: T, meta: z.core.GlobalMeta): T {
  z.globalRegistry.add(schema as z.core.$ZodType, meta);
  return schema;
}

export function wholeNumber(min: number, max: number) {
  const range = (iss: Found) => `must be between ${min} and ${max}, got ${shown(iss.input)}`;
  return z.int({ error: (iss) => `must be a whole number, got ${shown(iss.input)}` }).check(z.gte(min, { error: range }), z.lte(max, { error: range }));
}

export function text() {
  const problem = (iss: Found) => `must be a non-empty string, got ${shown(iss.input)}`;
  return z.string({ error: problem }).check(z.minLength(1, { error: problem }));
}

/** A non-empty string matching `pattern`, which editors check too (JSON Schema `pattern`). */
export function matching(pattern: RegExp, problem: (input: unknown) => string) {
  return text().check(z.regex(pattern, { error: (iss) => problem(iss.input) }));
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: (iss) => `must be one of ${values.map((value) => JSON.stringify(value)).join(', ')}, got ${shown(iss.input)}` });
}

export function flag() {
  return z.boolean({ error: (iss) => `must be true or false, got ${shown(iss.input)}` });
}

/** A list; `like` is a short example shown when the value is not a list at all. */
export function list<T extends z.ZodMiniType>(element: T, like: string) {
  return z.array(element, { error: (iss) => `must be a list like ${like}, got ${shown(iss.input)}` });
}

/**
 * An object that refuses fields it does not know, naming the ones it does (a typo is the usual
 * cause). Unions of these name each branch by its first field: `config-issues.ts` relies on it.
 */
export function fields<T extends z.core.$ZodLooseShape>(shape: T) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? `is not a known field (known: ${known})` : `must be an object, got ${shown(iss.input)}`),
  });
}
