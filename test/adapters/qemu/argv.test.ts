import { describe, expect, it } from 'vitest';
import { buildQemuArgv, deviceArgv, optionValue, type LaunchPlan } from '../../../adapters/qemu/argv.js';

const plan: LaunchPlan = {
  instanceName: 'demo',
  binary: 'qemu-system-x86_64',
  machineType: 'pc-q35-10.0',
  accel: 'tcg',
  cpuModel: 'qemu64',
  memoryMb: 256,
  cpus: 1,
  kernel: '/img/vmlinuz',
  initrd: '/img/initrd.gz',
  append: 'console=ttyS0',
  disk: undefined,
  forwards: [
    { guest: 8080, host: 18080 },
    { guest: 22, host: 10022 },
  ],
  qmpSocket: '/i/qmp.sock',
  qgaSocket: '/i/qga.sock',
  serialLog: '/i/serial.log',
};

function valueAfter(argv: string[], flag: string): string[] {
  return argv.flatMap((arg, index) => (arg === flag ? [argv[index + 1] as string] : []));
}

describe('buildQemuArgv', () => {
  it('pins the versioned machine type, accel, CPU, size', () => {
    const argv = buildQemuArgv(plan);
    expect(valueAfter(argv, '-machine')).toEqual(['pc-q35-10.0']);
    expect(valueAfter(argv, '-accel')).toEqual(['tcg']);
    expect(valueAfter(argv, '-cpu')).toEqual(['qemu64']);
    expect(valueAfter(argv, '-m')).toEqual(['256M']);
    expect(valueAfter(argv, '-smp')).toEqual(['1']);
    expect(argv).toContain('-nodefaults');
  });

  it('wires QMP, the guest agent, port forwards to loopback only, and vmgenid', () => {
    const argv = buildQemuArgv(plan);
    expect(valueAfter(argv, '-chardev')).toEqual(['socket,id=qmp0,path=/i/qmp.sock,server=on,wait=off', 'socket,id=qga0,path=/i/qga.sock,server=on,wait=off']);
    expect(valueAfter(argv, '-netdev')).toEqual(['user,id=net0,hostfwd=tcp:127.0.0.1:18080-:8080,hostfwd=tcp:127.0.0.1:10022-:22']);
    expect(valueAfter(argv, '-device')).toEqual([
      'virtio-serial-pci,id=vser0',
      'virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0',
      'virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56',
      'vmgenid,guid=auto',
    ]);
  });

  it('emits devices in the same order whatever else changes', () => {
    const devices = (p: LaunchPlan) => valueAfter(buildQemuArgv(p), '-device');
    const withDisk: LaunchPlan = { ...plan, memoryMb: 4096, forwards: [], disk: { path: '/i/disk.qcow2', format: 'qcow2' } };
    expect(devices(withDisk)).toEqual(['virtio-blk-pci,drive=disk0', ...devices(plan)]);
    expect(buildQemuArgv(plan)).toEqual(buildQemuArgv({ ...plan }));
  });

  it('attaches a cloud-init seed read-only after the disk, so the disk stays the first virtio-blk', () => {
    const argv = buildQemuArgv({ ...plan, disk: { path: '/i/overlay.qcow2', format: 'qcow2' }, seed: '/img/seed.iso' });
    expect(valueAfter(argv, '-drive')).toEqual(['file=/i/overlay.qcow2,format=qcow2,if=none,id=disk0', 'file=/img/seed.iso,format=raw,if=none,id=seed0,readonly=on']);
    expect(valueAfter(argv, '-device').filter((device) => device.startsWith('virtio-blk'))).toEqual(['virtio-blk-pci,drive=disk0', 'virtio-blk-pci,drive=seed0']);
    expect(buildQemuArgv(plan).join(' ')).not.toContain('seed');
    const withRuntime = buildQemuArgv({ ...plan, disk: { path: '/i/overlay.qcow2', format: 'qcow2' }, seed: '/img/seed.iso', runtime: '/i/runtime.iso' });
    expect(valueAfter(withRuntime, '-drive').at(-1)).toBe('file=/i/runtime.iso,format=raw,if=none,id=runtime0,readonly=on');
  });

  it('leaves the agent out when the guest has none', () => {
    const argv = buildQemuArgv({ ...plan, qgaSocket: undefined });
    expect(argv.join(' ')).not.toContain('qga');
  });

  it('doubles commas inside option values', () => {
    expect(optionValue('/a,b/qmp.sock')).toBe('/a,,b/qmp.sock');
    expect(buildQemuArgv({ ...plan, qmpSocket: '/a,b/qmp.sock' })).toContain('socket,id=qmp0,path=/a,,b/qmp.sock,server=on,wait=off');
  });

  it("puts a cold boot's RAM in a shared memory file, and maps a clone's privately and read-only from the snapshot's", () => {
    const cold = buildQemuArgv({ ...plan, memory: { path: '/i/mem.raw', access: 'shared' } });
    expect(valueAfter(cold, '-machine')).toEqual(['pc-q35-10.0,memory-backend=pc.ram']);
    expect(valueAfter(cold, '-m')).toEqual(['256M']);
    expect(valueAfter(cold, '-object')).toEqual(['memory-backend-file,id=pc.ram,size=256M,mem-path=/i/mem.raw,share=on,discard-data=off,prealloc=off']);
    const clone = buildQemuArgv({ ...plan, memory: { path: '/s/k,1/mem.raw', access: 'private' } });
    expect(valueAfter(clone, '-object')).toEqual(['memory-backend-file,id=pc.ram,size=256M,mem-path=/s/k,,1/mem.raw,share=off,readonly=on,rom=off,prealloc=off']);
  });
});

describe('deviceArgv', () => {
  it("is the same for two instances of one config, whatever their names, paths, ports and the memory file's mapping", () => {
    const capture = { ...plan, instanceName: 'one', memory: { path: '/home/a/instances/one/mem.raw', access: 'shared' as const } };
    const clone: LaunchPlan = {
      ...plan,
      instanceName: 'two',
      kernel: '/elsewhere/vmlinuz',
      initrd: '/elsewhere/initrd.gz',
      forwards: [
        { guest: 8080, host: 41000 },
        { guest: 22, host: 41001 },
      ],
      qmpSocket: '/j/qmp.sock',
      qgaSocket: '/j/qga.sock',
      serialLog: '/j/serial.log',
      memory: { path: '/home/a/snapshots/k/mem.raw', access: 'private' },
    };
    expect(deviceArgv(clone)).toEqual(deviceArgv(capture));
    expect(deviceArgv(capture).join(' ')).not.toMatch(/\/home|\/i\/|18080|warmvm-one/);
  });

  it('differs when the devices do', () => {
    const base = deviceArgv(plan);
    expect(deviceArgv({ ...plan, memoryMb: 512 })).not.toEqual(base);
    expect(deviceArgv({ ...plan, qgaSocket: undefined })).not.toEqual(base);
    expect(deviceArgv({ ...plan, forwards: [{ guest: 8080, host: 18080 }] })).not.toEqual(base);
    expect(deviceArgv({ ...plan, memory: { path: '/m', access: 'shared' } })).not.toEqual(base);
  });
});
