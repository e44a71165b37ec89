import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadExeca } from '../support/lazy-execa.js';
import type { Logger } from '../support/logger.js';
import { WarmvmError } from '../support/errors.js';
import { silentLogger } from '../support/logger.js';

/**
 * Debian packages through the host's own apt: resolve the versions apt would install, download
 * those exact versions (no root needed: `apt-get download` writes to the current folder), and
 * unpack them with `dpkg-deb -x` (no install, no maintainer scripts).
 */

/** The guest is x86_64 whatever the host: ask apt for amd64 packages by name. */
export const GUEST_ARCH = 'amd64';

export interface DebianPackage {
  name: string;
  version: string;
}

export interface AptOptions {
  signal?: AbortSignal;
  logger?: Logger;
}

const APT_UPDATE_HINT = 'run "apt-get update" as root (and check that /etc/apt/sources.list names a Debian 12 "bookworm" mirror)';

/**
 * The versions apt would install now (its "Candidate"), one per name, in the order given.
 * Reads only apt's local index: no network, fast enough to run on every start.
 */
export async function resolveCandidateVersions(names: readonly string[], options: AptOptions = {}): Promise<DebianPackage[]> {
  const { stdout } = await apt('apt-cache', ['policy', ...names.map(archName)], options);
  const candidates = parsePolicy(stdout);
  return names.map((name) => {
    const version = candidates.get(name);
    if (version === undefined || version === '(none)') {
      throw new WarmvmError('E_APT_PACKAGE', `apt knows no installable version of the Debian package ${name}`, { hint: APT_UPDATE_HINT });
    }
    return { name, version };
  });
}

/**
 * The first package of a metapackage's candidate "Depends" whose name matches: e.g. the
 * versioned kernel package (linux-image-6.1.0-NN-amd64) behind linux-image-amd64.
 */
export async function resolveDependencyName(metapackage: string, pattern: RegExp, options: AptOptions = {}): Promise<string> {
  const { stdout } = await apt('apt-cache', ['show', '--no-all-versions', archName(metapackage)], options);
  const depends = /^Depends:(.*)$/m.exec(stdout)?.[1] ?? '';
  const names = depends
    .split(/[,|]/)
    .map((part) => part.trim().split(/[\s(:]/)[0] ?? '')
    .filter((name) => name !== '');
  const found = names.find((name) => pattern.test(name));
  if (!found) {
    throw new WarmvmError('E_APT_PACKAGE', `the Debian package ${metapackage} depends on no package matching ${String(pattern)}`, { hint: APT_UPDATE_HINT });
  }
  return found;
}

/** What apt's answers depend on: its downloaded index and its configuration (sources, pinning). */
const APT_STATE = ['/var/lib/apt/lists', '/etc/apt/sources.list', '/etc/apt/sources.list.d', '/etc/apt/preferences', '/etc/apt/preferences.d', '/etc/apt/apt.conf.d'];

/**
 * A hash of the names, sizes and times of apt's index and configuration files. While it is
 * unchanged apt would resolve the same versions, so an earlier resolution can be reused without
 * running apt-cache (which costs about 0.6 s where apt's binary cache is turned off, as in
 * Debian's container images). A few `stat` calls, no reading.
 */
export async function aptStateFingerprint(roots: readonly string[] = APT_STATE): Promise<string> {
  const hash = createHash('sha256');
  for (const root of roots) {
    const info = await stat(root).catch(() => undefined);
    if (!info) {
      hash.update(`${root}\0missing\n`);
      continue;
    }
    const files = info.isDirectory() ? (await readdir(root)).sort().map((name) => join(root, name)) : [root];
    for (const file of files) {
      const fileInfo = await stat(file).catch(() => undefined);
      hash.update(`${file}\0${fileInfo?.size ?? -1}\0${fileInfo?.mtimeMs ?? -1}\n`);
    }
  }
  return hash.digest('hex');
}

/** Parses `apt-cache policy` output into name → candidate version. */
export function parsePolicy(output: string): Map<string, string> {
  const candidates = new Map<string, string>();
  let current: string | undefined;
  for (const line of output.split('\n')) {
    // A block starts with "name:" (or "name:arch:" when foreign architectures are enabled).
    const start = /^([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?:\s*$/.exec(line);
    if (start?.[1]) {
      current = start[1];
      continue;
    }
    const candidate = /^\s+Candidate:\s*(\S+)/.exec(line);
    if (candidate?.[1] && current !== undefined) candidates.set(current, candidate[1]);
  }
  return candidates;
}

/**
 * The .deb of each package at its exact version, from `cacheDir` when an earlier build fetched
 * it, else downloaded (into a temporary folder first, so the cache never holds a partial file).
 */
export async function downloadPackages(
  packages: readonly DebianPackage[],
  cacheDir: string,
  options: AptOptions & { onDownload?: (missing: DebianPackage[]) => void } = {},
): Promise<Map<string, string>> {
  await mkdir(cacheDir, { recursive: true });
  const paths = new Map<string, string>();
  const missing: DebianPackage[] = [];
  for (const pkg of packages) {
    const path = join(cacheDir, debFileName(pkg));
    const found = await stat(path).catch(() => undefined);
    if (found?.isFile() && found.size > 0) paths.set(pkg.name, path);
    else missing.push(pkg);
  }
  if (missing.length === 0) return paths;

  options.onDownload?.(missing);
  const staging = await mkdtemp(join(cacheDir, '.download-'));
  try {
    // As root, apt drops to the _apt user to download and warns that it cannot write here; the
    // folder is ours and private, so download as root instead of loosening its permissions.
    const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
    await apt('apt-get', [...sandbox, 'download', ...missing.map((pkg) => `${archName(pkg.name)}=${pkg.version}`)], { ...options, cwd: staging });
    const downloaded = await readdir(staging);
    for (const pkg of missing) {
      const file = downloaded.find((name) => name.startsWith(`${pkg.name}_`) && name.endsWith('.deb'));
      if (!file) throw new WarmvmError('E_APT_DOWNLOAD', `apt-get download did not produce ${pkg.name} ${pkg.version}`, { hint: APT_UPDATE_HINT });
      const path = join(cacheDir, debFileName(pkg));
      await rename(join(staging, file), path);
      paths.set(pkg.name, path);
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return paths;
}

/** Removes cached .debs other than `keep`, so the cache holds one set, not every version ever built. */
export async function pruneDownloadCache(cacheDir: string, keep: readonly DebianPackage[]): Promise<void> {
  const wanted = new Set(keep.map(debFileName));
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (name.endsWith('.deb') && !wanted.has(name)) await rm(join(cacheDir, name), { force: true });
  }
}

/** Unpacks a .deb's files under `dest` (like `dpkg -i` would place them, without installing). */
export async function extractPackage(deb: string, dest: string, options: AptOptions = {}): Promise<void> {
  await mkdir(dest, { recursive: true });
  try {
    const execa = await loadExeca();
    await execa('dpkg-deb', ['-x', deb, dest], { cancelSignal: options.signal, stdin: 'ignore' });
  } catch (cause) {
    throw commandError('dpkg-deb', `cannot unpack ${deb}`, cause, 'apt-get install dpkg (it comes with every Debian system)', options.signal);
  }
}

/** apt's own file name for a downloaded package ("busybox-static_1%3a1.35.0-4_amd64.deb"). */
export function debFileName(pkg: DebianPackage): string {
  return `${pkg.name}_${pkg.version.replaceAll(':', '%3a')}_${GUEST_ARCH}.deb`;
}

function archName(name: string): string {
  return `${name}:${GUEST_ARCH}`;
}

async function apt(command: 'apt-cache' | 'apt-get', args: string[], options: AptOptions & { cwd?: string }): Promise<{ stdout: string }> {
  const logger = options.logger ?? silentLogger;
  logger.debug({ command, args }, 'running apt');
  try {
    // apt's messages are translated; the parsers above read the C locale's.
    const execa = await loadExeca();
    const result = await execa(command, args, { cwd: options.cwd, env: { LC_ALL: 'C' }, cancelSignal: options.signal, stdin: 'ignore' });
    if (result.stderr.trim() !== '') logger.debug({ command, stderr: result.stderr }, 'apt said');
    return { stdout: result.stdout };
  } catch (cause) {
    const what = command === 'apt-get' ? 'download Debian packages' : 'read the Debian package index';
    const hint = command === 'apt-get' ? `check network access to the Debian mirror, and ${APT_UPDATE_HINT}` : APT_UPDATE_HINT;
    throw commandError(command, `cannot ${what} (${command} ${args.join(' ')})`, cause, hint, options.signal);
  }
}

function commandError(command: string, message: string, cause: unknown, hint: string, signal: AbortSignal | undefined): WarmvmError {
  if (signal?.aborted) return new WarmvmError('E_ABORTED', `${message}: cancelled`, { cause: signal.reason });
  const error = cause as { code?: string; stderr?: unknown };
  if (error.code === 'ENOENT') {
    return new WarmvmError('E_MISSING', `${command} was not found: the demo guest is built from Debian packages with apt and dpkg`, {
      hint: 'build the demo guest on Debian or Ubuntu, or give the config an image of your own ("kernel" or "disk")',
      cause,
    });
  }
  const stderr = typeof error.stderr === 'string' ? lastLines(error.stderr) : '';
  return new WarmvmError(command === 'dpkg-deb' ? 'E_DEB_UNPACK' : 'E_APT', stderr ? `${message}: ${stderr}` : message, { hint, cause });
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' / ');
}
