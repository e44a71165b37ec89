import { defaultCpuModel } from '../adapters/qemu/argv.js';
import { hashSpec, specFacts, type SpecFacts } from '../adapters/snapshot/manifest.js';
import { need, type Run } from './run.js';

/**
 * What the VM's state depends on: not bounds, health checks, rotation, the instance's name or
 * its host ports (each clone forwards its own).
 */
function specParts(run: Run): Record<string, unknown> {
  const boot = need(run.boot, 'the boot files');
  const { memoryMb, cpus, cpuModel, agent, settings } = run.spec;
  const ports = run.spec.ports.map((forward) => forward.guest);
  return { memoryMb, cpus, cpuModel, ports, agent, image: boot.description, append: boot.append, disk: boot.disk !== undefined, seed: boot.seed, settings };
}

/** The hash a snapshot and a running instance are matched by: the config key, the snapshot folder's name. */
export function specHash(run: Run): string {
  return hashSpec(specParts(run));
}

/** The spec's parts as a manifest keeps them (settings by digest only). */
export function specSummary(run: Run): SpecFacts {
  return specFacts(specParts(run));
}

/** The CPU model QEMU is given: the config's, else the accelerator's default. */
export function cpuModel(run: Run): string {
  return run.spec.cpuModel ?? defaultCpuModel(need(run.accel, 'the accelerator').accel);
}
