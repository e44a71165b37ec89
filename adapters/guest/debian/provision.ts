import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { throwIfAborted, WarmvmError } from '../../support/errors.js';
import { buildQemuArgv, defaultCpuModel } from '../../qemu/argv.js';
import { signalAndWaitGone, spawnQemu, tailLog } from '../../qemu/process.js';
import { sleep } from '../../support/sleep.js';

export interface ProvisionOptions {
  binary: string;
  machineType: string;
  kernel: string;
  initrd: string;
  append: string;
  /** The qcow2 the provisioning writes into: after a clean power-off it is the finished image. */
  disk: string;
  seedIso: string;
  /** Holds the QMP socket, QEMU's log and the serial log. */
  workDir: string;
  memoryMb: number;
  cpus: number;
  /** Printed by the guest when provisioning is complete; it then powers itself off. */
  doneMarker: string;
  boundMs: number;
  signal?: AbortSignal;
  onProgress?: (line: string) => void;
}

/** How often a long provisioning says it is still going. */
const PROGRESS_EVERY_MS = 15_000;

/**
 * First boot of a fresh image with its cloud-init seed: waits for the done marker on the serial
 * console and for the guest to power itself off, so the disk is complete and clean. The guest's
 * own "warmvm: ..." lines are passed on as progress. QEMU never outlives this call.
 */
export async function provisionGuest(options: ProvisionOptions): Promise<{ seconds: number; serialLog: string }> {
  const serialLog = join(options.workDir, 'serial.log');
  const argv = buildQemuArgv({
    instanceName: 'provisioning',
    binary: options.binary,
    machineType: options.machineType,
    accel: 'tcg',
    cpuModel: defaultCpuModel('tcg'),
    memoryMb: options.memoryMb,
    cpus: options.cpus,
    kernel: options.kernel,
    initrd: options.initrd,
    append: options.append,
    disk: { path: options.disk, format: 'qcow2' },
    seed: options.seedIso,
    forwards: [],
    qmpSocket: join(options.workDir, 'qmp.sock'),
    qgaSocket: undefined,
    serialLog,
  });
  const logFile = join(options.workDir, 'qemu.log');
  const started = Date.now();
  const qemu = await spawnQemu({ binary: options.binary, argv, logFile, pidFile: join(options.workDir, 'qemu.pid') });
  let reported = 0;
  let lastNote = started;
  const report = async (): Promise<string> => {
    const text = await readFile(serialLog, 'utf8').catch(() => '');
    const lines = text.split('\n');
    for (const line of lines.slice(reported, -1)) {
      const marker = /warmvm: .*/.exec(line)?.[0];
      if (marker) options.onProgress?.(`guest: ${marker}`);
    }
    reported = Math.max(reported, lines.length - 1);
    return text;
  };
  try {
    for (;;) {
      throwIfAborted(options.signal, 'provisioning the guest');
      const text = await report();
      const elapsed = Date.now() - started;
      if (qemu.hasExited()) {
        const exit = await qemu.exited;
        if (text.includes(options.doneMarker) && exit.code === 0) return { seconds: elapsed / 1000, serialLog };
        throw new WarmvmError(
          'E_PROVISION',
          `the guest powered off before provisioning finished (QEMU exit ${exit.code ?? exit.signal ?? '?'}, no "${options.doneMarker}" on the serial console); its last lines:\n${lastLines(text)}\nQEMU: ${await tailLog(logFile, 3)}`,
          { hint: 'see the serial log for cloud-init errors (its path is printed below)' },
        );
      }
      if (elapsed > options.boundMs) {
        throw new WarmvmError('E_PROVISION', `provisioning did not finish within ${Math.round(options.boundMs / 1000)} s; the serial console's last lines:\n${lastLines(text)}`, {
          hint: 'see the serial log for where cloud-init stopped; on a slow machine raise WARMVM_PROVISION_SECONDS',
        });
      }
      if (Date.now() - lastNote >= PROGRESS_EVERY_MS) {
        lastNote = Date.now();
        options.onProgress?.(`provisioning, ${Math.round(elapsed / 1000)} s so far`);
      }
      await Promise.race([qemu.exited, sleep(500, options.signal)]);
    }
  } finally {
    if (!qemu.hasExited()) await signalAndWaitGone(qemu.pid, 'SIGKILL', new AbortController().signal);
  }
}

function lastLines(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .slice(-12)
    .map((line) => `  | ${line.replace(/\r$/, '')}`)
    .join('\n');
}
