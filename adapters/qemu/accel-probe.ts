import { constants } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { loadExeca } from '../support/lazy-execa.js';
import { WarmvmError } from '../support/errors.js';
import type { Accel, AccelChoice } from '../spec/vm.js';

export interface AccelVerdict {
  accel: Accel;
  /** Why this accelerator: what was proven or what ruled the others out. */
  reason: string;
  /** The hypervisor that was tried and failed, if any. */
  rejected: { accel: Accel; reason: string } | undefined;
  probeMs: number | undefined;
  cached: boolean;
}

export interface ProbeInput {
  choice: AccelChoice;
  qemuBinary: string;
  qemuVersion: string;
  machineType: string;
  accelerators: string[];
  /** A kernel that prints "Linux version" on ttyS0 once it has decompressed itself. */
  kernel: () => Promise<string>;
  /** Where the verdict is kept between runs; a hypervisor probe that hangs costs its whole bound. */
  cacheFile: string | undefined;
  boundMs?: number;
  signal?: AbortSignal;
  platform?: NodeJS.Platform;
  /** The KVM device to check; tests point it elsewhere. */
  kvmDevice?: string;
}

/** Printed by the kernel once it runs decompressed: proof the vCPU makes progress. */
const PROGRESS_MARKER = 'Linux version';
const DEFAULT_BOUND_MS = 4_000;

/**
 * Picks the accelerator. A hypervisor is used only once a guest has been seen to make progress
 * under it: on some hosts /dev/kvm exists and QEMU reports KVM enabled, yet the guest never
 * gets past its decompressor. Everything else falls back to TCG.
 */
export async function chooseAccelerator(input: ProbeInput): Promise<AccelVerdict> {
  if (input.choice === 'tcg') return { accel: 'tcg', reason: 'asked for tcg', rejected: undefined, probeMs: undefined, cached: false };
  const platform = input.platform ?? process.platform;
  const hypervisor: Accel = input.choice === 'auto' ? (platform === 'darwin' ? 'hvf' : 'kvm') : input.choice;
  const unusable = await hypervisorUnusable(hypervisor, input.accelerators, platform, input.kvmDevice ?? '/dev/kvm');
  if (unusable) return refuseOrFallBack(input.choice, hypervisor, unusable, undefined, false);

  const cacheKey = `${input.qemuVersion}|${hypervisor}|${platform}|${release()}`;
  const cached = await readCache(input.cacheFile, cacheKey);
  if (cached) return refuseOrFallBack(input.choice, hypervisor, cached.failure, cached.probeMs, true);

  const started = Date.now();
  const failure = await probeHypervisor(hypervisor, input);
  const probeMs = Date.now() - started;
  await writeCache(input.cacheFile, cacheKey, failure, probeMs);
  return refuseOrFallBack(input.choice, hypervisor, failure, probeMs, false);
}

function refuseOrFallBack(choice: AccelChoice, hypervisor: Accel, failure: string | undefined, probeMs: number | undefined, cached: boolean): AccelVerdict {
  if (failure === undefined) {
    return { accel: hypervisor, reason: `${hypervisor} proven: a guest kernel ran under it`, rejected: undefined, probeMs, cached };
  }
  if (choice !== 'auto') {
    throw new WarmvmError('E_ACCEL', `accelerator ${hypervisor} was asked for but cannot be used: ${failure}`, {
      hint: 'set "accel": "auto" or "tcg" in the config',
    });
  }
  return { accel: 'tcg', reason: `${hypervisor} not usable (${failure}); using tcg`, rejected: { accel: hypervisor, reason: failure }, probeMs, cached };
}

async function hypervisorUnusable(accel: Accel, accelerators: string[], platform: NodeJS.Platform, kvmDevice: string): Promise<string | undefined> {
  if (!accelerators.includes(accel)) return `this QEMU has no ${accel} support`;
  if (accel === 'kvm') {
    if (platform !== 'linux') return 'kvm needs Linux';
    try {
      await access(kvmDevice, constants.R_OK | constants.W_OK);
    } catch {
      return `${kvmDevice} is missing or not accessible`;
    }
  }
  if (accel === 'hvf' && platform !== 'darwin') return 'hvf needs macOS';
  return undefined;
}

/** Boots the kernel under the hypervisor; undefined when the progress marker appears in the bound. */
async function probeHypervisor(accel: Accel, input: ProbeInput): Promise<string | undefined> {
  const bound = input.boundMs ?? DEFAULT_BOUND_MS;
  const kernel = await input.kernel();
  const execa = await loadExeca();
  const child = execa(
    input.qemuBinary,
    [
      '-machine',
      input.machineType,
      '-accel',
      accel,
      '-cpu',
      'host',
      '-m',
      '128M',
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-no-reboot',
      '-kernel',
      kernel,
      '-append',
      'console=ttyS0 panic=-1',
      '-serial',
      'stdio',
    ],
    { reject: false, stdin: 'ignore', buffer: false, forceKillAfterDelay: 1_000, cancelSignal: input.signal },
  );
  let output = '';
  const sawMarker = new Promise<boolean>((resolve) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4096);
      if (output.includes(PROGRESS_MARKER)) resolve(true);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4096);
    });
    void child.then(() => resolve(false));
  });
  const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), bound).unref());
  const proven = await Promise.race([sawMarker, timer]);
  child.kill('SIGKILL');
  // Reap it, but never wait long: a wrapper script's children may hold its output open.
  await Promise.race([child, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
  if (input.signal?.aborted) throw new WarmvmError('E_ABORTED', 'accelerator probe was cancelled', { cause: input.signal.reason });
  if (proven) return undefined;
  const said = output.trim().split('\n').slice(-1)[0];
  return said ? `no guest progress in ${bound} ms (QEMU said: ${said.trim()})` : `no guest progress in ${bound} ms`;
}

interface CacheEntry {
  key: string;
  failure: string | undefined;
  probeMs: number;
}

async function readCache(file: string | undefined, key: string): Promise<CacheEntry | undefined> {
  if (!file) return undefined;
  try {
    const entry = JSON.parse(await readFile(file, 'utf8')) as CacheEntry;
    return entry.key === key ? entry : undefined;
  } catch {
    return undefined;
  }
}

async function writeCache(file: string | undefined, key: string, failure: string | undefined, probeMs: number): Promise<void> {
  if (!file) return;
  await writeFile(file, JSON.stringify({ key, failure, probeMs } satisfies CacheEntry) + '\n').catch(() => undefined);
}
