/**
 * Secret redaction, written once for every place a secret could leak from: logs (pino's paths),
 * traces and inspector events (by key), protocol exchanges (JSON text by key), and text a guest
 * printed (by value).
 */

/** What a redacted value reads as, everywhere. */
export const REDACTED = '[redacted]';

/** Keys whose values are secrets, wherever they appear: guest-exec's input-data carries them. */
const SECRET_KEY = /secret|password|passwd|token|credential|input-?data/i;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** Field paths pino replaces before anything is written (pino matches paths, not patterns). */
export const LOG_REDACT_PATHS = [
  'secret',
  'secrets',
  'inputData',
  'input-data',
  '*.secret',
  '*.secrets',
  '*.inputData',
  '*["input-data"]',
  'arguments["input-data"]',
  '*.arguments["input-data"]',
];

/** A copy of a value with every secret-named key's value replaced, to a bounded depth. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[deep]';
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) out[key] = isSecretKey(key) ? REDACTED : redact(inner, depth + 1);
  return out;
}

/** JSON text for logs and exchange records: secret-named keys replaced, long text cut. */
export function redactedJson(value: unknown, maxChars = 1000): string {
  const text = JSON.stringify(value, (key, inner: unknown) => {
    if (isSecretKey(key)) return REDACTED;
    if (typeof inner === 'bigint') return inner.toString();
    return inner;
  });
  return truncate(text ?? 'undefined', maxChars);
}

/** Text with every occurrence of the given secret values replaced (a guest's stderr, say). */
export function redactValues(text: string, values: Iterable<string>): string {
  let out = text;
  for (const value of values) if (value.length > 0) out = out.split(value).join(REDACTED);
  return out;
}

export function truncate(text: string, maxChars = 200): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}… (${text.length} chars)`;
}
