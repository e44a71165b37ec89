import { buildQemuArgv } from '../adapters/qemu/argv.js';
import type { InstanceState } from '../adapters/instance/state.js';
import { VmRunner } from '../adapters/vm/runner.js';
import { cpuModel, specHash } from './spec-facts.js';
import { emitExchange, need, type Run } from './run.js';

/** The health checks' URLs on the host ports forwarded now. */
function healthChecks(run: Run): { url: string; expectStatus: number }[] {
  return run.spec.health.map((check) => {
    const host = run.forwards.find((forward) => forward.guest === check.port)?.host;
    return { url: `http://127.0.0.1:${host}${check.path}`, expectStatus: check.status };
  });
}

/** A cold boot's QEMU argv, from the image, accelerator and ports this run chose. */
export function coldArgv(run: Run): string[] {
  const qemu = need(run.qemu, 'QEMU');
  const boot = need(run.boot, 'the boot files');
  return buildQemuArgv({
    instanceName: run.paths.name,
    binary: qemu.binary,
    machineType: qemu.machineType,
    accel: need(run.accel, 'the accelerator').accel,
    cpuModel: cpuModel(run),
    memoryMb: run.spec.memoryMb,
    cpus: run.spec.cpus,
    kernel: boot.kernel,
    initrd: boot.initrd,
    append: boot.append,
    disk: boot.disk,
    seed: boot.seed,
    runtime: run.spec.settings ? run.paths.runtimeIso : undefined,
    forwards: run.forwards,
    qmpSocket: run.paths.qmpSocket,
    qgaSocket: run.spec.agent ? run.paths.qgaSocket : undefined,
    serialLog: run.paths.serialLog,
  });
}

/** One QEMU of this run, its health checks and exchanges reported to the run's listeners. */
export function vmRunner(run: Run, argv: string[]): VmRunner {
  const qemu = need(run.qemu, 'QEMU');
  return new VmRunner({
    onHealthAttempt: (answers) => {
      for (const answer of answers) {
        const ok = answer.status !== undefined && answer.status < 400;
        emitExchange(run, { channel: 'health', what: answer.url, ok, summary: answer.status !== undefined ? `HTTP ${answer.status}` : `no answer (${answer.error ?? 'refused'})` });
      }
    },
    onExchange: (exchange) => emitExchange(run, exchange),
    binary: qemu.binary,
    argv,
    qgaSocket: run.spec.agent ? run.paths.qgaSocket : undefined,
    paths: run.paths,
    health: healthChecks(run),
    agent: run.spec.agent,
    readyMarker: run.spec.readyMarker,
    bounds: run.spec.bounds,
    cleanup: run.cleanup,
    logger: run.logger,
  });
}

/** The settings disk the guest reads at boot; a resume's argv names it too. */
export async function writeRuntimeDisk(run: Run): Promise<boolean> {
  if (!run.spec.settings) return false;
  // Loaded only for a guest with settings: the demo guest's start never pays for the ISO writer.
  const { writeRuntimeDisk: write } = await import('../adapters/guest/runtime-disk.js');
  await write(run.paths.runtimeIso, run.paths.name, run.spec.settings);
  return true;
}

/** What `state.json` records of the QEMU left running: read by status, stop and capture. */
export function instanceState(run: Run, pid: number, path: string, runner: VmRunner): InstanceState {
  const qemu = need(run.qemu, 'QEMU');
  const argv = runner.argv.at(-2) === '-incoming' ? runner.argv.slice(0, -2) : runner.argv;
  return {
    name: run.paths.name,
    pid,
    startedAt: new Date().toISOString(),
    path,
    accel: need(run.accel, 'the accelerator').accel,
    qemuVersion: qemu.version.text,
    machineType: qemu.machineType,
    qmpSocket: run.paths.qmpSocket,
    argv,
    specHash: specHash(run),
    forwards: run.forwards,
    health: healthChecks(run),
  };
}

/** Every health check answering, as the machines record it (URL and status only). */
export async function probeHealth(runner: VmRunner, signal: AbortSignal): Promise<{ url: string; status: number | undefined }[]> {
  return (await runner.probeHealth(signal)).map((answer) => ({ url: answer.url, status: answer.status }));
}

/** Stops the QEMU of a boot or resume; one that failed before launching has none to stop. */
export async function stopIfLaunched(runner: VmRunner | undefined): Promise<{ how: string }> {
  return (await runner?.stop()) ?? { how: 'nothing was launched' };
}
