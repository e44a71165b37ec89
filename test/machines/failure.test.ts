import { describe, expect, it } from 'vitest';
import { toFailure, withCauses } from '../../machines/failure.js';

describe('toFailure', () => {
  it("keeps warmvm's code, and a system error's own code (ENOSPC) as --json reports it", () => {
    const warm = Object.assign(new Error('the snapshot is corrupt'), { code: 'E_SNAPSHOT_CORRUPT', hint: 'captured anew' });
    expect(toFailure('resume.preparing', warm)).toEqual({ state: 'resume.preparing', code: 'E_SNAPSHOT_CORRUPT', message: 'the snapshot is corrupt', hint: 'captured anew' });
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect(toFailure('capture.storing', full).code).toBe('ENOSPC');
    expect(toFailure('capture.storing', new Error('no code')).code).toBe('E_UNEXPECTED');
    expect(toFailure('capture.storing', 'a string').code).toBe('E_UNEXPECTED');
  });
});

describe('withCauses', () => {
  it('says the causes a message leaves out, once each, and none it already says', () => {
    const full = Object.assign(new Error("ENOSPC: no space left on device, open '/h/lock'"), { code: 'ENOSPC' });
    const lock = new Error('cannot create the lock file /h/lock', { cause: full });
    expect(toFailure('start.preflight', lock).message).toBe("cannot create the lock file /h/lock: ENOSPC: no space left on device, open '/h/lock'");
    const says = new Error(`QEMU could not load the snapshot: ${full.message}`, { cause: full });
    expect(withCauses(says)).toBe(says.message);
    expect(withCauses(new Error('outer', { cause: new Error('middle', { cause: 'root' }) }))).toBe('outer: middle: root');
  });
});
