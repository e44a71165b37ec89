import { describe, expect, it } from 'vitest';
import { QemuExitedError } from '../../../adapters/vm/qemu-exited.js';

describe('QemuExitedError', () => {
  it("is E_QEMU_CRASHED for a signal of QEMU's own failure, naming it and that a cold boot is tried once more", () => {
    const error = new QemuExitedError(
      { code: undefined, signal: 'SIGABRT' },
      'waiting for the guest agent',
      "physmem.c:2678: Assertion 'section_index < d->map.sections_nb' failed",
    );
    expect(error.code).toBe('E_QEMU_CRASHED');
    expect(error.message).toBe(
      "QEMU crashed (killed by SIGABRT) while waiting for the guest agent; it said:\nphysmem.c:2678: Assertion 'section_index < d->map.sections_nb' failed",
    );
    expect(error.hint).toContain('a cold boot is tried once more');
    expect(new QemuExitedError({ code: undefined, signal: 'SIGSEGV' }, 'booting', '').code).toBe('E_QEMU_CRASHED');
  });

  it('is E_QEMU_EXITED for a kill from outside or an exit code', () => {
    for (const exit of [
      { code: undefined, signal: 'SIGKILL' },
      { code: undefined, signal: 'SIGTERM' },
      { code: 1, signal: undefined },
    ]) {
      const error = new QemuExitedError(exit, 'booting', '');
      expect(error.code).toBe('E_QEMU_EXITED');
      expect(error.message).toMatch(/^QEMU exited \((killed by SIG(KILL|TERM)|exit code 1)\) while booting$/);
    }
  });
});
