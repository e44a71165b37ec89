import { describe, expect, it } from 'vitest';
import { WarmvmError } from '../../adapters/support/errors.js';
import { EXEC_EXIT, exitStatusOf, jsonResult, parseTimeout } from '../../bin/commands/exec.js';

describe('warmvm exec, its pure parts', () => {
  it('gives its own failures exit statuses apart from the guest command', () => {
    expect(exitStatusOf(new WarmvmError('E_EXEC_TIMEOUT', 'x'))).toBe(EXEC_EXIT.timeout);
    expect(exitStatusOf(new WarmvmError('E_EXEC_NOT_FOUND', 'x'))).toBe(127);
    expect(exitStatusOf(new WarmvmError('E_ABORTED', 'x'))).toBe(130);
    expect(exitStatusOf(new WarmvmError('E_NO_AGENT', 'x'))).toBe(125);
    expect(exitStatusOf(new Error('anything else'))).toBe(125);
  });

  it('takes --timeout as a positive number of seconds', () => {
    expect(parseTimeout(undefined)).toBeUndefined();
    expect(parseTimeout('2')).toBe(2);
    expect(parseTimeout('0.5')).toBe(0.5);
    for (const bad of ['0', '-1', 'soon', '']) expect(() => parseTimeout(bad), bad).toThrow(/--timeout/);
  });

  it('prints {exitCode, signal?, stdout, stderr}', () => {
    expect(jsonResult(0, { signal: undefined, stdout: Buffer.from('out'), stderr: Buffer.alloc(0) })).toEqual({ exitCode: 0, stdout: 'out', stderr: '' });
    expect(jsonResult(137, { signal: 9, stdout: Buffer.alloc(0), stderr: Buffer.from([0xfe]) })).toEqual({
      exitCode: 137,
      signal: 9,
      stdout: '',
      stderr: '\uFFFD',
      stderrBase64: '/g==',
    });
  });
});
