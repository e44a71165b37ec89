import { readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { loadExeca } from '../support/lazy-execa.js';
import { WarmvmError } from '../support/errors.js';
import { resolveCommand } from '../support/which.js';

export interface QemuInfo {
  binary: string;
  version: { major: number; minor: number; micro: number; text: string };
  /** The full versioned machine type the `q35` alias stands for, e.g. `pc-q35-10.0`. */
  machineType: string;
  accelerators: string[];
}

export const MIN_QEMU = { major: 9, minor: 0 } as const;

export const QEMU_INSTALL_HINT =
  'on Debian 12: echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list && ' +
  'apt-get update && apt-get install -y -t bookworm-backports qemu-system-x86 qemu-utils (or run scripts/setup.sh)';

/** `$WARMVM_QEMU`, else `qemu-system-x86_64` from PATH. */
export function qemuBinaryName(env: NodeJS.ProcessEnv = process.env): string {
  return env.WARMVM_QEMU && env.WARMVM_QEMU.trim() !== '' ? env.WARMVM_QEMU : 'qemu-system-x86_64';
}

export function parseQemuVersion(text: string): QemuInfo['version'] | undefined {
  const match = /QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), micro: Number(match[3] ?? 0), text: match[0].replace('QEMU emulator version ', '') };
}

/** From `-machine help`: the versioned type behind an alias such as `q35`. */
export function parseMachineAlias(help: string, alias: string): string | undefined {
  for (const line of help.split('\n')) {
    const match = /^(\S+)\s.*\(alias of (\S+)\)/.exec(line);
    if (match && match[1] === alias) return match[2];
  }
  return undefined;
}

export function parseAccelerators(help: string): string[] {
  return help
    .split('\n')
    .slice(1)
    .map((line) => line.trim())
    .filter((line) => /^[a-z]+$/.test(line));
}

/**
 * `inspectQemu`, remembered in `cacheFile` for as long as the binary file is the same one (path,
 * size, mtime): asking QEMU costs three processes on every start otherwise.
 */
export async function inspectQemuCached(cacheFile: string, binary = qemuBinaryName(), signal?: AbortSignal): Promise<QemuInfo> {
  const path = await resolveCommand(binary);
  const file = path ? await stat(await realpath(path)).catch(() => undefined) : undefined;
  const key = file ? `${path}|${file.size}|${file.mtimeMs}` : undefined;
  if (key) {
    const cached = await readFile(cacheFile, 'utf8')
      .then((text) => JSON.parse(text) as { key?: string; info?: QemuInfo })
      .catch(() => undefined);
    if (cached?.key === key && cached.info) return cached.info;
  }
  const info = await inspectQemu(binary, signal);
  if (key) await writeFile(cacheFile, JSON.stringify({ key, info }) + '\n').catch(() => undefined);
  return info;
}

/** Finds QEMU, proves it new enough, and asks it for the versioned machine type. */
export async function inspectQemu(binary = qemuBinaryName(), signal?: AbortSignal): Promise<QemuInfo> {
  const run = async (args: string[]): Promise<string> => {
    try {
      const execa = await loadExeca();
      const result = await execa(binary, args, { timeout: 15_000, cancelSignal: signal, stdin: 'ignore' });
      return result.stdout;
    } catch (cause) {
      const missing = (cause as { code?: string }).code === 'ENOENT';
      throw new WarmvmError(missing ? 'E_QEMU_MISSING' : 'E_QEMU_BROKEN', missing ? `QEMU (${binary}) was not found` : `QEMU (${binary} ${args.join(' ')}) failed`, {
        hint: missing
          ? `install QEMU ${MIN_QEMU.major}.${MIN_QEMU.minor} or newer: ${QEMU_INSTALL_HINT}; or set WARMVM_QEMU to its path`
          : 'run it by hand to see why; reinstall QEMU if it is broken',
        cause,
      });
    }
  };
  const versionText = await run(['--version']);
  const version = parseQemuVersion(versionText);
  if (!version) {
    throw new WarmvmError('E_QEMU_BROKEN', `cannot read QEMU's version from "${versionText.split('\n')[0]}"`, {
      hint: `check that ${binary} is qemu-system-x86_64`,
    });
  }
  assertQemuNewEnough(version, binary);
  const machineType = parseMachineAlias(await run(['-machine', 'help']), 'q35');
  if (!machineType) {
    throw new WarmvmError('E_QEMU_BROKEN', `QEMU ${version.text} lists no q35 machine type`, { hint: 'install qemu-system-x86 (x86_64 system emulator)' });
  }
  const accelerators = parseAccelerators(await run(['-accel', 'help']));
  return { binary, version, machineType, accelerators };
}

export function assertQemuNewEnough(version: QemuInfo['version'], binary: string): void {
  const ok = version.major > MIN_QEMU.major || (version.major === MIN_QEMU.major && version.minor >= MIN_QEMU.minor);
  if (ok) return;
  throw new WarmvmError('E_QEMU_OLD', `QEMU ${version.text} (${binary}) is too old: warmvm needs ${MIN_QEMU.major}.${MIN_QEMU.minor} or newer for its snapshots`, {
    hint: `install a newer QEMU: ${QEMU_INSTALL_HINT}; or set WARMVM_QEMU to a newer qemu-system-x86_64`,
  });
}
