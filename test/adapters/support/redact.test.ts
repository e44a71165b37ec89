import { describe, expect, it } from 'vitest';
import { isSecretKey, redact, redactedJson, redactValues, REDACTED } from '../../../adapters/support/redact.js';

describe('redaction, one rule for every place', () => {
  it('treats the same keys as secret in values, JSON text and traces', () => {
    for (const key of ['secret', 'secrets', 'apiSecret', 'input-data', 'inputData', 'password', 'DB_PASSWD', 'token', 'credentials']) expect(isSecretKey(key), key).toBe(true);
    for (const key of ['path', 'status', 'execute', 'arguments', 'pid']) expect(isSecretKey(key), key).toBe(false);
    const message = { execute: 'guest-exec', arguments: { path: '/bin/rotate', 'input-data': 'c2VjcmV0', env: { password: 'p' } } };
    expect(redactedJson(message)).not.toMatch(/c2VjcmV0|"p"/);
    expect(redact(message)).toEqual({ execute: 'guest-exec', arguments: { path: '/bin/rotate', 'input-data': REDACTED, env: { password: REDACTED } } });
  });

  it('replaces secret values wherever they occur in text', () => {
    expect(redactValues('bad value ab12 in API_KEY=ab12, empty ignored', ['ab12', ''])).toBe(`bad value ${REDACTED} in API_KEY=${REDACTED}, empty ignored`);
  });
});
