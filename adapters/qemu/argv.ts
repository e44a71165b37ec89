import type { Accel } from '../spec/vm.js';

/** Everything QEMU's command line needs, resolved: paths exist, host ports chosen, accel proven. */
export interface LaunchPlan {
  instanceName: string;
  binary: string;
  machineType: string;
  accel: Accel;
  cpuModel: string;
  memoryMb: number;
  cpus: number;
  kernel: string | undefined;
  initrd: string | undefined;
  append: string | undefined;
  disk: { path: string; format: 'qcow2' | 'raw' } | undefined;
  /** A read-only ISO (a cloud-init seed), after the disk so the disk stays the guest's first. */
  seed?: string | undefined;
  /** The runtime settings ISO (label warmvm-rt), read-only, after the seed. */
  runtime?: string | undefined;
  forwards: { guest: number; host: number }[];
  qmpSocket: string;
  qgaSocket: string | undefined;
  serialLog: string;
}

/** The CPU model a snapshot can pin: `host` under a hypervisor, a fixed model under TCG. */
export function defaultCpuModel(accel: Accel): string {
  return accel === 'tcg' ? 'qemu64' : 'host';
}

/**
 * QEMU's argv for a plan. Devices always come in the same order, so a snapshot's argv can be
 * compared with a later launch's and the device tree matches when RAM is restored.
 */
export function buildQemuArgv(plan: LaunchPlan): string[] {
  const argv = [
    '-name',
    `warmvm-${plan.instanceName}`,
    '-machine',
    plan.machineType,
    '-accel',
    plan.accel,
    '-cpu',
    plan.cpuModel,
    '-m',
    `${plan.memoryMb}M`,
    '-smp',
    String(plan.cpus),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
  ];
  if (plan.kernel) argv.push('-kernel', plan.kernel);
  if (plan.initrd) argv.push('-initrd', plan.initrd);
  if (plan.append) argv.push('-append', plan.append);
  argv.push('-serial', `file:${optionValue(plan.serialLog)}`);
  argv.push('-chardev', `socket,id=qmp0,path=${optionValue(plan.qmpSocket)},server=on,wait=off`, '-mon', 'chardev=qmp0,mode=control');
  if (plan.disk) {
    argv.push('-drive', `file=${optionValue(plan.disk.path)},format=${plan.disk.format},if=none,id=disk0`, '-device', 'virtio-blk-pci,drive=disk0');
  }
  if (plan.seed) {
    argv.push('-drive', `file=${optionValue(plan.seed)},format=raw,if=none,id=seed0,readonly=on`, '-device', 'virtio-blk-pci,drive=seed0');
  }
  if (plan.runtime) {
    argv.push('-drive', `file=${optionValue(plan.runtime)},format=raw,if=none,id=runtime0,readonly=on`, '-device', 'virtio-blk-pci,drive=runtime0');
  }
  if (plan.qgaSocket) {
    argv.push(
      '-device',
      'virtio-serial-pci,id=vser0',
      '-chardev',
      `socket,id=qga0,path=${optionValue(plan.qgaSocket)},server=on,wait=off`,
      '-device',
      'virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0',
    );
  }
  const hostfwd = plan.forwards.map((forward) => `,hostfwd=tcp:127.0.0.1:${forward.host}-:${forward.guest}`).join('');
  argv.push('-netdev', `user,id=net0${hostfwd}`, '-device', 'virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56');
  // A new generation id on every launch makes the guest kernel reseed its RNG after a resume.
  argv.push('-device', 'vmgenid,guid=auto');
  return argv;
}

/** QEMU's option syntax splits on commas; a comma inside a value is written twice. */
export function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}
