import { rm } from 'node:fs/promises';
import { findFreePort } from '../adapters/instance/ports.js';
import { buildQemuArgv, deviceArgv, type LaunchPlan } from '../adapters/qemu/argv.js';
import type { InstanceState } from '../adapters/instance/state.js';
import { VmRunner } from '../adapters/vm/runner.js';
import type { HostFacts } from '../adapters/snapshot/manifest.js';
import { cpuModel, specHash, specSummary } from './spec-facts.js';
import { emitExchange, need, type Run } from './run.js';

/** The health checks' URLs on the host ports forwarded now. */
function healthChecks(run: Run): { url: string; expectStatus: number }[] {
  return run.spec.health.map((check) => {
    const host = run.forwards.find((forward) => forward.guest === check.port)?.host;
    return { url: `http://127.0.0.1:${host}${check.path}`, expectStatus: check.status };
  });
}

/** This instance's host ports: the config's fixed ones, else free ones chosen now (a clone never needs the capture's). */
export async function chooseForwards(run: Run): Promise<void> {
  run.forwards = [];
  for (const forward of run.spec.ports) run.forwards.push({ guest: forward.guest, host: forward.host ?? (await findFreePort()) });
}

/** The launch plan from the image, accelerator and ports this run chose, with the RAM where `memory` says. */
export function launchPlan(run: Run, memory: NonNullable<LaunchPlan['memory']>): LaunchPlan {
  const qemu = need(run.qemu, 'QEMU');
  const boot = need(run.boot, 'the boot files');
  return {
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
    memory,
  };
}

/** A cold boot's argv: its RAM written through to the instance's memory file, which a capture keeps. */
export function coldArgv(run: Run): string[] {
  return buildQemuArgv(launchPlan(run, { path: run.paths.memoryFile, access: 'shared' }));
}

/** A clone's argv: the cold boot's devices, with this instance's paths and ports, the RAM mapped privately from the snapshot's memory file. */
export function cloneArgv(run: Run): string[] {
  return buildQemuArgv(launchPlan(run, { path: need(run.pinned, 'the pinned snapshot').memory, access: 'private' }));
}

/** The devices this run launches, without what is the instance's own: what a snapshot's manifest must match. */
export function launchDevices(run: Run): string[] {
  // From the config's ports, not the forwards: a later start knows its devices before it chooses ports.
  const forwards = run.spec.ports.map((forward) => ({ guest: forward.guest, host: 0 }));
  return deviceArgv({ ...launchPlan(run, { path: run.paths.memoryFile, access: 'shared' }), forwards });
}

/** What a snapshot must match to be resumed on this host with this config. */
export function hostFacts(run: Run): HostFacts {
  const qemu = need(run.qemu, 'QEMU');
  return {
    qemuVersion: qemu.version.text,
    machineType: qemu.machineType,
    accel: need(run.accel, 'the accelerator').accel,
    cpuModel: cpuModel(run),
    specHash: specHash(run),
    spec: specSummary(run),
    deviceArgv: launchDevices(run),
  };
}

/** A cold boot's memory file, once its QEMU is gone: a capture has moved it, anything else drops it. */
export async function dropColdMemory(run: Run): Promise<void> {
  await rm(run.paths.memoryFile, { force: true });
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
  const launched = runner.argv.at(-2) === '-incoming' ? runner.argv.slice(0, -2) : runner.argv;
  // A clone's memory file by its place in the store, not by the pin that lasted only this start.
  const { pinned, snapshot } = run;
  const argv = pinned && snapshot ? launched.map((arg) => arg.replace(pinned.dir, snapshot.dir)) : launched;
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
    snapshot: path.endsWith('resume') ? run.snapshot?.key : undefined,
    forwards: run.forwards,
    health: healthChecks(run),
    facts: hostFacts(run),
    diskSnapshot: run.suspended ? run.suspended.record.snapshot : run.boot?.disk && run.manifest?.files.disk ? run.snapshot?.key : undefined,
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
