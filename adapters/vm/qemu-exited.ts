import type { QemuExit } from '../qemu/process.js';
import { WarmvmError } from '../support/errors.js';

/** QEMU died while a step waited on it: the error says during what, and QEMU's last words. */
export class QemuExitedError extends WarmvmError {
  constructor(
    readonly exit: QemuExit,
    during: string,
    logTail: string,
  ) {
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code ?? 'unknown'}`;
    super('E_QEMU_EXITED', `QEMU exited (${how}) while ${during}${logTail ? `; it said:\n${logTail}` : ''}`, {
      hint: 'see qemu.log and serial.log in the instance folder',
    });
  }
}
