import type { QemuExit } from '../qemu/process.js';
import { WarmvmError } from '../support/errors.js';

/**
 * Signals only QEMU's own failure sends it (an assertion, a bad memory access): warmvm, the tests
 * and a user's `kill` stop it with SIGTERM or SIGKILL.
 */
const CRASH_SIGNALS: ReadonlySet<string> = new Set(['SIGABRT', 'SIGSEGV', 'SIGBUS', 'SIGILL', 'SIGFPE', 'SIGTRAP', 'SIGSYS']);

/** QEMU died while a step waited on it: the error says during what, and QEMU's last words. A crash of its own is E_QEMU_CRASHED. */
export class QemuExitedError extends WarmvmError {
  constructor(
    readonly exit: QemuExit,
    during: string,
    logTail: string,
  ) {
    const crashed = exit.signal !== undefined && CRASH_SIGNALS.has(exit.signal);
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code ?? 'unknown'}`;
    super(crashed ? 'E_QEMU_CRASHED' : 'E_QEMU_EXITED', `QEMU ${crashed ? 'crashed' : 'exited'} (${how}) while ${during}${logTail ? `; it said:\n${logTail}` : ''}`, {
      hint: crashed
        ? 'QEMU itself failed (see qemu.log in the instance folder); a cold boot is tried once more after such a crash. If it happens again, report it to QEMU with qemu.log'
        : 'see qemu.log and serial.log in the instance folder',
    });
  }
}
