import { chooseAccelerator } from '../../adapters/qemu/accel-probe.js';
import { findBuiltDemoGuest } from '../../adapters/guest/demo/guest.js';
import { demoGuestRequirements } from '../../adapters/guest/demo/requirements.js';
import { describeError, WarmvmError } from '../../adapters/support/errors.js';
import type { Logger } from '../../adapters/support/logger.js';
import { ensureHome, homePaths } from '../../adapters/instance/paths.js';
import { commandExists } from '../../adapters/support/which.js';
import { inspectQemu, QEMU_INSTALL_HINT, type QemuInfo } from '../../adapters/qemu/binary.js';
import type { Output } from '../output.js';

interface Check {
  check: string;
  ok: boolean;
  /** A failing optional check is a warning: things work, slower or with less. */
  optional: boolean;
  detail: string;
  fix: string | undefined;
}

/** Every check runs whatever the others found, and each failing one carries its fix. */
export async function doctorCommand(options: { home: string; output: Output; logger: Logger }): Promise<number> {
  const checks: Check[] = [];
  const attempt = async (check: string, fn: () => Promise<string>, optional = false): Promise<void> => {
    try {
      checks.push({ check, ok: true, optional, detail: await fn(), fix: undefined });
    } catch (error) {
      checks.push({ check, ok: false, optional, detail: describeError(error).split('\n')[0] ?? String(error), fix: error instanceof WarmvmError ? error.hint : undefined });
    }
  };

  let qemu: QemuInfo | undefined;
  await attempt('qemu', async () => {
    qemu = await inspectQemu();
    return `${qemu.binary} ${qemu.version.text}, machine ${qemu.machineType}, accelerators: ${qemu.accelerators.join(', ')}`;
  });
  await attempt('qemu-img', async () => {
    if (!(await commandExists('qemu-img'))) throw new WarmvmError('E_MISSING', 'qemu-img was not found', { hint: `apt-get install qemu-utils; ${QEMU_INSTALL_HINT}` });
    return 'found';
  });
  await attempt('home', async () => {
    const home = await ensureHome(options.home);
    return `${home.home} is writable`;
  });
  for (const requirement of demoGuestRequirements()) {
    await attempt(
      `guest build: ${requirement.command}`,
      async () => {
        if (!(await commandExists(requirement.command))) throw new WarmvmError('E_MISSING', `${requirement.command} was not found (${requirement.why})`, { hint: requirement.fix });
        return 'found';
      },
      requirement.optional,
    );
  }
  await attempt(
    'snapshot pull: curl',
    async () => {
      if (!(await commandExists('curl'))) {
        throw new WarmvmError('E_MISSING', 'curl was not found (it receives the blobs of a snapshot pull; without it Node does, at about half the rate)', {
          hint: 'apt-get install curl',
        });
      }
      return 'found';
    },
    true,
  );
  await attempt('accelerator', async () => {
    if (!qemu) throw new WarmvmError('E_QEMU_MISSING', 'not probed: QEMU is not usable', { hint: 'fix the qemu check first' });
    const found = qemu;
    const images = homePaths(options.home).images;
    const verdict = await chooseAccelerator({
      choice: 'auto',
      qemuBinary: found.binary,
      qemuVersion: found.version.text,
      machineType: found.machineType,
      accelerators: found.accelerators,
      kernel: async () => {
        const built = await findBuiltDemoGuest(images);
        if (!built)
          throw new WarmvmError('E_NO_KERNEL', 'no kernel to probe the hypervisor with yet', { hint: 'run "warmvm guest build" (or "warmvm start"), then "warmvm doctor" again' });
        return built.kernel;
      },
      cacheFile: `${homePaths(options.home).home}/accel-probe.json`,
    });
    return `${verdict.accel}: ${verdict.reason}${verdict.cached ? ' (cached)' : ''}`;
  });

  const ok = checks.every((check) => check.ok || check.optional);
  const human = checks
    .map((check) => `${check.ok ? 'ok  ' : check.optional ? 'warn' : 'FAIL'} ${check.check.padEnd(22)} ${check.detail}${check.fix ? `\n     fix: ${check.fix}` : ''}`)
    .join('\n');
  options.output.result({ ok, checks }, human);
  return ok ? 0 : 1;
}
