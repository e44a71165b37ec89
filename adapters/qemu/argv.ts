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
  /**
   * The file the guest's RAM lives in. `shared`: a cold boot writes its RAM through to it, so a
   * capture leaves it there. `private`: a clone maps a snapshot's file read-only and copy-on-write.
   * `anonymous`: no file at all, for an instance woken from its suspended state (its RAM came in the stream).
   */
  memory?: { path: string; access: 'shared' | 'private' } | { access: 'anonymous' } | undefined;
}

/** The RAM backend's id: `pc.ram` keeps the RAM block's usual name, so the migration stream matches. */
const RAM_BACKEND = 'pc.ram';

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
    plan.memory ? `${plan.machineType},memory-backend=${RAM_BACKEND}` : plan.machineType,
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
  if (plan.memory) argv.push('-object', memoryBackend(plan.memoryMb, plan.memory));
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

/**
 * The argv without what differs between two launches of one snapshot (the instance's name,
 * paths and host ports, the image's place on this host, how the memory file is mapped): a
 * snapshot is resumed only by a launch whose devices come out the same, in the same order.
 */
export function deviceArgv(plan: LaunchPlan): string[] {
  const mark = (value: string | undefined, what: string): string | undefined => (value === undefined ? undefined : `<${what}>`);
  return buildQemuArgv({
    ...plan,
    instanceName: '<name>',
    kernel: mark(plan.kernel, 'kernel'),
    initrd: mark(plan.initrd, 'initrd'),
    disk: plan.disk && { ...plan.disk, path: '<disk>' },
    seed: mark(plan.seed, 'seed'),
    runtime: mark(plan.runtime, 'runtime'),
    forwards: plan.forwards.map((forward) => ({ guest: forward.guest, host: 0 })),
    qmpSocket: '<qmp>',
    qgaSocket: mark(plan.qgaSocket, 'qga'),
    serialLog: '<serial>',
    memory: plan.memory && { path: '<memory>', access: 'shared' },
  });
}

/**
 * Shared: written through, never discarded on exit. Private: opened O_RDONLY and mapped
 * MAP_PRIVATE, so pages fault in lazily, writes stay the clone's, and the file never changes;
 * `readonly=on` also makes QEMU refuse to discard RAM, which on a private mapping of a writable
 * file would punch holes in the file every clone shares.
 */
function memoryBackend(memoryMb: number, memory: NonNullable<LaunchPlan['memory']>): string {
  if (memory.access === 'anonymous') return `memory-backend-ram,id=${RAM_BACKEND},size=${memoryMb}M`;
  const access = memory.access === 'shared' ? 'share=on,discard-data=off' : 'share=off,readonly=on,rom=off';
  return `memory-backend-file,id=${RAM_BACKEND},size=${memoryMb}M,mem-path=${optionValue(memory.path)},${access},prealloc=off`;
}

/** QEMU's option syntax splits on commas; a comma inside a value is written twice. */
export function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}
