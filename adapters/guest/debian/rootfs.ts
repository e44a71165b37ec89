import { chmod, copyFile, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadExeca } from '../../support/lazy-execa.js';
import { throwIfAborted, WarmvmError } from '../../support/errors.js';
import { projectRoot } from '../../support/project-root.js';

/**
 * The Debian profile's root filesystem: `debootstrap` (minbase) with the packages below, then
 * the few files that make it boot as a VM disk and carry the workload. No chroot script runs:
 * everything is written from the host, so a build needs root only for debootstrap itself.
 */

export const DEBIAN_SUITE = 'bookworm';
export const DEBIAN_MIRROR = process.env.WARMVM_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
/** debootstrap's --include does not resolve virtual packages: python3-cffi-backend is cloud-init's. */
export const DEBIAN_PACKAGES = [
  'systemd-sysv',
  'udev',
  'linux-image-amd64',
  'qemu-guest-agent',
  'docker.io',
  'cloud-init',
  'python3-cffi-backend',
  'busybox-static',
  'iproute2',
] as const;

/** Services a VM started for seconds has no use for, and that would compete with the workload under TCG. */
const MASKED_UNITS = ['apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'fstrim.timer', 'man-db.timer', 'systemd-timesyncd.service'];

/** Where the VM keeps docker/rotate-secrets for its rotate hook (cloud-init's warmvm-rotate), relative to the root. */
const VM_ROTATE_DIR = 'usr/local/lib/warmvm';

/** The workload's files, copied from docker/ into the container image and read for the build's key. */
export const WORKLOAD_FILES = ['entrypoint', 'health-server', 'rotate-secrets'] as const;

export interface RootfsOptions {
  signal?: AbortSignal;
  /** Where debootstrap keeps its downloaded .debs between builds. */
  cacheDir: string;
  onLine?: (line: string) => void;
}

export async function debootstrap(rootfs: string, options: RootfsOptions): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new WarmvmError('E_GUEST_ROOT', 'building the Debian guest needs root: debootstrap creates device nodes and files owned by other users', {
      hint: 'run "sudo warmvm guest build --profile debian" once; later starts reuse the image without root',
    });
  }
  await mkdir(options.cacheDir, { recursive: true });
  const execa = await loadExeca();
  const argv = ['--variant=minbase', `--include=${DEBIAN_PACKAGES.join(',')}`, `--cache-dir=${options.cacheDir}`, DEBIAN_SUITE, rootfs, DEBIAN_MIRROR];
  const child = execa('debootstrap', argv, { cancelSignal: options.signal, stdin: 'ignore', all: true, buffer: { all: true } });
  child.all?.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.startsWith('I: ') && !line.includes('Retrieving') && !line.includes('Validating')) options.onLine?.(line.slice(3));
  });
  try {
    await child;
  } catch (cause) {
    throwIfAborted(options.signal, 'debootstrap');
    const output = String((cause as { all?: string }).all ?? '')
      .trim()
      .split('\n')
      .slice(-8)
      .join('\n');
    throw new WarmvmError('E_DEBOOTSTRAP', `debootstrap of Debian ${DEBIAN_SUITE} from ${DEBIAN_MIRROR} failed:\n${output}`, {
      hint: 'check the network and the mirror (WARMVM_DEBIAN_MIRROR), and that debootstrap is installed (apt-get install debootstrap)',
      cause,
    });
  }
}

/**
 * Makes the debootstrapped tree a VM disk: fstab, an uninitialised machine-id (systemd makes a
 * new one on first boot), cloud-init limited to NoCloud, idle timers masked, apt's downloads
 * dropped, the rotate hook's script, and the workload's root filesystem at /opt/warmvm/workload.tar
 * for cloud-init to import.
 */
export async function configureRootfs(rootfs: string, options: { signal?: AbortSignal }): Promise<void> {
  await writeFile(join(rootfs, 'etc/fstab'), 'LABEL=root / ext4 defaults,noatime 0 1\n');
  await writeFile(join(rootfs, 'etc/machine-id'), 'uninitialized\n');
  await writeFile(join(rootfs, 'etc/hostname'), 'warmvm-debian\n');
  await mkdir(join(rootfs, 'etc/cloud/cloud.cfg.d'), { recursive: true });
  // NoCloud only: probing for cloud metadata services costs minutes with no network answer.
  // No ssh server to key, and C.UTF-8 needs no locale generation (15 s under TCG).
  await writeFile(join(rootfs, 'etc/cloud/cloud.cfg.d/90-warmvm.cfg'), 'datasource_list: [NoCloud, None]\nssh_genkeytypes: []\nlocale: C.UTF-8\n');
  for (const unit of MASKED_UNITS) await symlink('/dev/null', join(rootfs, 'etc/systemd/system', unit)).catch(() => undefined);
  for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    for (const name of await readdir(join(rootfs, dir)).catch(() => [] as string[])) {
      if (name.endsWith('.deb') || name.endsWith('_Packages') || name.endsWith('_InRelease')) await rm(join(rootfs, dir, name), { force: true });
    }
  }
  throwIfAborted(options.signal, 'configuring the Debian root filesystem');
  // The VM's own copy, which its rotate hook sources: the secrets go from the VM into the folder it
  // shares with the container, with no `docker exec` (seconds under TCG).
  await mkdir(join(rootfs, VM_ROTATE_DIR), { recursive: true });
  await copyFile(join(projectRoot(), 'docker', 'rotate-secrets'), join(rootfs, VM_ROTATE_DIR, 'rotate-secrets'));
  await chmod(join(rootfs, VM_ROTATE_DIR, 'rotate-secrets'), 0o644);
  await writeWorkloadTarball(rootfs, options.signal);
}

/** The container's root filesystem: Debian's static busybox (from the guest's own tree) and docker/'s scripts. */
async function writeWorkloadTarball(rootfs: string, signal?: AbortSignal): Promise<void> {
  const stage = join(rootfs, 'opt/warmvm/.workload-root');
  await rm(stage, { recursive: true, force: true });
  for (const dir of ['bin', 'usr/local/bin', 'run', 'tmp', 'proc', 'sys', 'dev', 'etc']) await mkdir(join(stage, dir), { recursive: true });
  await chmod(join(stage, 'tmp'), 0o1777);
  await copyFile(join(rootfs, 'bin/busybox'), join(stage, 'bin/busybox'));
  await chmod(join(stage, 'bin/busybox'), 0o755);
  const execa = await loadExeca();
  const { stdout } = await execa(join(stage, 'bin/busybox'), ['--list'], { cancelSignal: signal, stdin: 'ignore' });
  for (const applet of stdout.split('\n').filter((name) => /^[\w.[-]+$/.test(name) && name !== 'busybox')) {
    await symlink('busybox', join(stage, 'bin', applet)).catch(() => undefined);
  }
  for (const file of WORKLOAD_FILES) {
    await copyFile(join(projectRoot(), 'docker', file), join(stage, 'usr/local/bin', file));
    await chmod(join(stage, 'usr/local/bin', file), 0o755);
  }
  await writeFile(join(stage, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(stage, 'etc/group'), 'root:x:0:\n');
  await execa('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', stage, '-cf', join(rootfs, 'opt/warmvm/workload.tar'), '.'], { cancelSignal: signal, stdin: 'ignore' });
  await rm(stage, { recursive: true, force: true });
}

/**
 * Unmounts whatever a killed debootstrap left mounted under `dir` (it mounts /proc and /sys in
 * the target), deepest first, so that removing the build folder never walks into them.
 */
export async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8').catch(() => ''))
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((point): point is string => point?.startsWith(`${dir}/`) === true)
    .sort((a, b) => b.length - a.length);
  if (mounts.length === 0) return;
  const execa = await loadExeca();
  for (const point of mounts) await execa('umount', ['--lazy', point], { reject: false, stdin: 'ignore' });
}

/** The newest kernel and its initrd in the tree's /boot (the image boots them with -kernel/-initrd). */
export async function findBootFiles(rootfs: string): Promise<{ kernel: string; initrd: string; release: string }> {
  const names = await readdir(join(rootfs, 'boot'));
  const release = names
    .filter((name) => name.startsWith('vmlinuz-'))
    .map((name) => name.slice('vmlinuz-'.length))
    .sort()
    .at(-1);
  if (!release || !names.includes(`initrd.img-${release}`)) {
    throw new WarmvmError('E_GUEST_KERNEL', `the Debian root filesystem has no kernel and initrd in /boot (found: ${names.join(', ') || 'nothing'})`, {
      hint: 'linux-image-amd64 did not install: see the debootstrap output; rebuild with "warmvm guest build --profile debian --force"',
    });
  }
  return { kernel: join(rootfs, 'boot', `vmlinuz-${release}`), initrd: join(rootfs, 'boot', `initrd.img-${release}`), release };
}
