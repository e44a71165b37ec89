import { lstat, readFile, readlink } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import type { CpioEntry } from '../../formats/cpio.js';
import { readElfDynamic } from '../../formats/elf.js';
import { WarmvmError } from '../../support/errors.js';
import type { KernelModule } from './kernel-modules.js';

/** Where the guest keeps its libraries: a directory the loader searches without an ld.so.cache. */
const GUEST_LIB_DIR = 'lib/x86_64-linux-gnu';
/** Where, inside the unpacked packages, a library may be. */
const PACKAGE_LIB_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'usr/lib64', 'lib', 'usr/lib'];

/** What the initramfs's files are made from. */
export interface DemoRootfsInputs {
  /** The busybox-static, qemu-guest-agent and library packages unpacked together. */
  userland: string;
  /** The guest's /init. */
  init: Buffer;
  /** Scripts installed executable in /usr/local/bin. */
  workload: { name: string; data: Buffer }[];
  /** Kernel modules in load order. */
  modules: KernelModule[];
  /** Shown in the guest as /etc/warmvm/build.json. */
  buildInfo: unknown;
}

/**
 * The files of the demo guest's initramfs: busybox, the guest agent with every shared library it
 * loads (found by following DT_NEEDED from the agent through the unpacked packages), the kernel
 * modules, /init and the workload scripts.
 */
export async function demoRootfsEntries(inputs: DemoRootfsInputs): Promise<CpioEntry[]> {
  const entries: CpioEntry[] = [
    // The kernel opens /dev/console for init's stdio before init can mount devtmpfs.
    { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    ...['proc', 'sys', 'run', 'var', 'etc', 'bin', 'sbin', 'usr/bin', 'usr/sbin', 'usr/local/bin'].map((path): CpioEntry => ({ type: 'dir', path })),
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    { type: 'dir', path: 'root', mode: 0o700 },
    { type: 'file', path: 'init', data: inputs.init, mode: 0o755 },
    { type: 'file', path: 'bin/busybox', data: await readFromTree(inputs.userland, 'bin/busybox'), mode: 0o755 },
    { type: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') },
    { type: 'file', path: 'etc/group', data: Buffer.from('root:x:0:\n') },
    { type: 'file', path: 'etc/hosts', data: Buffer.from('127.0.0.1 localhost\n') },
    { type: 'file', path: 'etc/warmvm/build.json', data: Buffer.from(JSON.stringify(inputs.buildInfo, null, 2) + '\n') },
  ];

  const agent = await readFromTree(inputs.userland, 'usr/sbin/qemu-ga');
  entries.push({ type: 'file', path: 'usr/sbin/qemu-ga', data: agent, mode: 0o755 });
  entries.push(...(await sharedLibraryEntries(inputs.userland, agent, 'qemu-ga')));

  for (const module of inputs.modules) entries.push({ type: 'file', path: `lib/modules/warmvm/${module.fileName}`, data: module.data });
  entries.push({ type: 'file', path: 'etc/warmvm/modules', data: Buffer.from(inputs.modules.map((module) => module.fileName + '\n').join('')) });

  for (const script of inputs.workload) entries.push({ type: 'file', path: `usr/local/bin/${script.name}`, data: script.data, mode: 0o755 });
  return entries;
}

/** The program's loader and the transitive closure of its DT_NEEDED libraries, as guest files. */
async function sharedLibraryEntries(tree: string, program: Buffer, programName: string): Promise<CpioEntry[]> {
  const { interpreter, needed } = readElfDynamic(program, programName);
  const entries: CpioEntry[] = [];
  const placed = new Set<string>();
  const queue: { soname: string; neededBy: string }[] = needed.map((soname) => ({ soname, neededBy: programName }));

  if (interpreter) {
    const loader = basename(interpreter);
    entries.push({ type: 'file', path: `${GUEST_LIB_DIR}/${loader}`, data: await readFromTree(tree, interpreter), mode: 0o755 });
    placed.add(loader);
    // The loader's absolute path is compiled into every program: keep it there as a link.
    if (posix.dirname(interpreter).replace(/^\//, '') !== GUEST_LIB_DIR) {
      entries.push({ type: 'symlink', path: interpreter, target: `/${GUEST_LIB_DIR}/${loader}` });
    }
  }

  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (placed.has(next.soname)) continue;
    placed.add(next.soname);
    const data = await findLibrary(tree, next.soname, next.neededBy);
    entries.push({ type: 'file', path: `${GUEST_LIB_DIR}/${next.soname}`, data, mode: 0o644 });
    for (const soname of readElfDynamic(data, next.soname).needed) queue.push({ soname, neededBy: next.soname });
  }
  return entries;
}

async function findLibrary(tree: string, soname: string, neededBy: string): Promise<Buffer> {
  for (const dir of PACKAGE_LIB_DIRS) {
    const found = await readFromTree(tree, `${dir}/${soname}`).catch(() => undefined);
    if (found) return found;
  }
  throw new WarmvmError('E_GUEST_LIBRARY', `${soname} (needed by ${neededBy}) is in none of the downloaded Debian packages`, {
    hint: "the guest agent package gained a dependency: add the package that ships this library to the demo guest builder's library list",
  });
}

/**
 * A file of an unpacked package tree, following symlinks inside the tree: packages hold absolute
 * links (/lib64/ld-linux-x86-64.so.2 → /lib/x86_64-linux-gnu/…) that must not resolve on the host.
 * Only the file itself may be a link: the folders dpkg-deb unpacks from these packages are real.
 */
export async function readFromTree(tree: string, path: string): Promise<Buffer> {
  let relative = posix.normalize('/' + path);
  for (let hops = 0; hops < 40; hops += 1) {
    const onHost = join(tree, relative);
    const info = await lstat(onHost).catch((cause: unknown) => {
      throw new WarmvmError('E_GUEST_FILE', `${relative} is missing from the unpacked Debian packages`, { cause });
    });
    if (!info.isSymbolicLink()) return readFile(onHost);
    const target = await readlink(onHost);
    relative = posix.normalize(target.startsWith('/') ? target : posix.join(posix.dirname(relative), target));
  }
  throw new WarmvmError('E_GUEST_FILE', `${path} is a loop of symlinks in the unpacked Debian packages`);
}
