import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { loadExeca } from '../../support/lazy-execa.js';
import { readElfSection } from '../../formats/elf.js';
import { WarmvmError } from '../../support/errors.js';

/** A kernel module as the guest's /init loads it. */
export interface KernelModule {
  /** As the kernel names it: underscores, no suffix ("virtio_pci"). */
  name: string;
  /** The file name to give it in the guest ("virtio_pci.ko"). */
  fileName: string;
  /** Uncompressed: busybox's insmod cannot load a compressed module. */
  data: Buffer;
}

/**
 * The modules to insmod, dependencies first, for `wanted` and everything they depend on, read
 * from each module's `.modinfo` "depends=" (the kernel package ships no modules.dep, and the
 * guest has no modprobe or depmod). Modules built into the kernel (modules.builtin) are skipped.
 */
export async function resolveModuleLoadOrder(modulesDir: string, wanted: readonly string[], signal?: AbortSignal): Promise<KernelModule[]> {
  const files = new Map<string, string>();
  for (const path of await listModuleFiles(join(modulesDir, 'kernel'))) files.set(moduleName(path), path);
  const builtin = new Set(
    (await readFile(join(modulesDir, 'modules.builtin'), 'utf8').catch(() => ''))
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map(moduleName),
  );

  const ordered: KernelModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = async (name: string, neededBy: string | undefined): Promise<void> => {
    if (state.get(name) === 'done' || builtin.has(name)) return;
    if (state.get(name) === 'visiting') throw new WarmvmError('E_GUEST_MODULES', `kernel modules depend on each other in a cycle through ${name}`);
    const path = files.get(name);
    if (!path) {
      throw new WarmvmError('E_GUEST_MODULES', `kernel module ${name}${neededBy ? ` (needed by ${neededBy})` : ''} is neither in ${modulesDir} nor built in`, {
        hint: "the Debian kernel package changed: update the demo guest builder's module list",
      });
    }
    state.set(name, 'visiting');
    const data = await readModule(path, signal);
    for (const dependency of moduleDepends(data, path)) await visit(dependency, name);
    state.set(name, 'done');
    ordered.push({ name, fileName: `${name}.ko`, data });
  };
  for (const name of wanted) await visit(normalizeName(name), undefined);
  return ordered;
}

/** The module names listed in a module's `.modinfo` "depends=" entry. */
export function moduleDepends(module: Buffer, what = 'module'): string[] {
  const modinfo = readElfSection(module, '.modinfo', what);
  if (!modinfo) return [];
  const entry = modinfo
    .toString('utf8')
    .split('\0')
    .find((field) => field.startsWith('depends='));
  if (!entry) return [];
  return entry
    .slice('depends='.length)
    .split(',')
    .filter((name) => name !== '')
    .map(normalizeName);
}

const MODULE_FILE = /\.ko(\.gz|\.xz|\.zst)?$/;

async function listModuleFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((cause: unknown) => {
    throw new WarmvmError('E_GUEST_MODULES', `the kernel package has no modules folder ${dir}`, { cause });
  });
  return entries.filter((entry) => entry.isFile() && MODULE_FILE.test(entry.name)).map((entry) => join(entry.parentPath, entry.name));
}

/** Debian compresses modules in some releases (not in bookworm's 6.1): undo it on the host. */
async function readModule(path: string, signal: AbortSignal | undefined): Promise<Buffer> {
  const suffix = MODULE_FILE.exec(path)?.[1];
  if (suffix === undefined) return readFile(path);
  if (suffix === '.gz') return gunzipSync(await readFile(path));
  const command = suffix === '.xz' ? 'xz' : 'zstd';
  try {
    const execa = await loadExeca();
    const result = await execa(command, ['-dc', path], { encoding: 'buffer', cancelSignal: signal, stdin: 'ignore' });
    return Buffer.from(result.stdout);
  } catch (cause) {
    throw new WarmvmError('E_GUEST_MODULES', `cannot decompress the kernel module ${path} with ${command}`, {
      hint: `apt-get install ${command === 'xz' ? 'xz-utils' : 'zstd'}`,
      cause,
    });
  }
}

/** "kernel/drivers/char/hw_random/virtio-rng.ko.xz" → "virtio_rng", as the kernel names it. */
function moduleName(path: string): string {
  return normalizeName(basename(path.trim()).replace(MODULE_FILE, ''));
}

function normalizeName(name: string): string {
  return name.replaceAll('-', '_');
}
