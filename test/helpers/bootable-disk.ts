import { execa } from 'execa';
import { mkdir, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A disk shaped like a downloaded cloud image: an MBR, a FAT boot partition with syslinux and the
 * kernel, and the root filesystem in a second partition, booted by the firmware (SeaBIOS) with no
 * `-kernel`. Made from an unpartitioned root image (the Debian profile's base.qcow2) with Debian's
 * syslinux, mtools, dosfstools and sfdisk; nothing is mounted. Kept at `out` and reused while it exists.
 */
export async function ensureBootableDisk(options: { rootImage: string; kernel: string; initrd: string; append: string; out: string }): Promise<string> {
  if (await stat(options.out).catch(() => undefined)) return options.out;
  const work = `${options.out}.build`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const sector = 512;
    const bootStart = 2048;
    const bootSectors = 192 * 2048; // 192 MiB: the kernel and a 40 MB initrd with room to spare
    const rootStart = bootStart + bootSectors;
    const root = join(work, 'root.raw');
    await execa('qemu-img', ['convert', '-O', 'raw', options.rootImage, root]);
    const rootSectors = Math.ceil((await stat(root)).size / sector);

    const boot = join(work, 'boot.fat');
    // Hidden sectors = the partition's start, as a partitioner would set them for the boot sector.
    await execa('mkfs.fat', ['-C', '-F', '16', '-h', String(bootStart), '-n', 'BOOT', boot, String((bootSectors * sector) / 1024)]);
    const config = join(work, 'syslinux.cfg');
    await writeFile(config, `DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND ${options.append}\n`);
    await execa('mcopy', ['-i', boot, options.kernel, '::/vmlinuz']);
    await execa('mcopy', ['-i', boot, options.initrd, '::/initrd.img']);
    await execa('mcopy', ['-i', boot, config, '::/syslinux.cfg']);
    await execa('syslinux', ['--install', boot]);

    const disk = join(work, 'disk.raw');
    await writeFile(disk, '');
    await truncate(disk, (rootStart + rootSectors) * sector);
    await execa('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', disk], {
      input: `label: dos\nstart=${bootStart}, size=${bootSectors}, type=6, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n`,
    });
    await execa('dd', ['if=/usr/lib/syslinux/mbr/mbr.bin', `of=${disk}`, 'bs=440', 'count=1', 'conv=notrunc', 'status=none']);
    await execa('dd', [`if=${boot}`, `of=${disk}`, `bs=${sector}`, `seek=${bootStart}`, 'conv=notrunc,sparse', 'status=none']);
    await execa('dd', [`if=${root}`, `of=${disk}`, 'bs=1M', `seek=${rootStart * sector}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
    // Made in the work folder (beside `out`), so a failure leaves no partial image behind.
    await execa('qemu-img', ['convert', '-O', 'qcow2', disk, join(work, 'disk.qcow2')]);
    await rename(join(work, 'disk.qcow2'), options.out);
    return options.out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
