import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { WarmvmError } from '../support/errors.js';
import { configError } from './config-issues.js';
import { type ConfigInput, configSchema } from './config-schema.js';
import { defaultSpec, profileSpec, type BootSource, type VmSpec } from './vm.js';

/** Reads and validates a config file; relative paths in it are taken from the file's folder. */
export async function loadConfigFile(file: string): Promise<VmSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new WarmvmError('E_CONFIG_READ', `cannot read config file ${file}`, { hint: 'check the path given to --config', cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new WarmvmError('E_CONFIG_JSON', `config file ${file} is not valid JSON: ${(cause as Error).message}`, {
      hint: 'fix the JSON syntax (no comments or trailing commas)',
      cause,
    });
  }
  return parseConfig(parsed, { file, baseDir: dirname(resolve(file)) });
}

/** Validates a parsed config object into a VmSpec, naming the exact field when one is wrong. */
export function parseConfig(value: unknown, where: { file: string; baseDir: string }): VmSpec {
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) throw configError(where.file, configSchema, value, parsed.error.issues);
  return toVmSpec(parsed.data, where.baseDir, where.file);
}

/** A config the schema accepted, over the defaults of its image's guest. */
function toVmSpec(config: ConfigInput, baseDir: string, file: string): VmSpec {
  const boot = config.image === undefined ? undefined : bootSource(config.image, baseDir);
  // A profile brings its own defaults (memory, rotation, bounds); the fields below override them.
  const spec = boot?.kind === 'profile' ? profileSpec(boot.profile) : defaultSpec();
  if (boot) spec.boot = boot;
  spec.memoryMb = config.memoryMb ?? spec.memoryMb;
  spec.cpus = config.cpus ?? spec.cpus;
  spec.accel = config.accel ?? spec.accel;
  spec.cpuModel = config.cpuModel ?? spec.cpuModel;
  spec.agent = config.agent ?? spec.agent;
  if (config.ports) spec.ports = config.ports.map((port) => ({ guest: port.guest, host: port.host }));
  if (config.health) spec.health = config.health.map((check) => ({ port: check.port, path: check.path ?? '/', status: check.status ?? 200 }));
  if (config.rotation !== undefined) spec.rotation = config.rotation === false ? undefined : { command: config.rotation.command, names: config.rotation.secrets };
  else if (spec.boot.kind !== 'demo' && spec.boot.kind !== 'profile') spec.rotation = undefined; // only warmvm's own guests' commands are known
  spec.readyMarker = config.readyMarker ?? spec.readyMarker;
  if (config.settings) spec.settings = { ...config.settings };
  spec.snapshotPull = config.snapshot?.pull ?? spec.snapshotPull;
  if (config.bounds) {
    const bounds = config.bounds;
    const ms = (seconds: number | undefined, otherwise: number): number => (seconds === undefined ? otherwise : seconds * 1000);
    spec.bounds = {
      launchMs: ms(bounds.launchSeconds, spec.bounds.launchMs),
      bootMs: ms(bounds.bootSeconds, spec.bounds.bootMs),
      healthMs: ms(bounds.healthSeconds, spec.bounds.healthMs),
      stopMs: ms(bounds.stopSeconds, spec.bounds.stopMs),
      incomingMs: ms(bounds.incomingSeconds, spec.bounds.incomingMs),
      rotateMs: ms(bounds.rotateSeconds, spec.bounds.rotateMs),
      captureMs: ms(bounds.captureSeconds, spec.bounds.captureMs),
    };
  }
  // Checked here, not in the schema: the ports may be the image's defaults.
  for (const [index, check] of spec.health.entries()) {
    if (!spec.ports.some((port) => port.guest === check.port)) {
      throw new WarmvmError('E_CONFIG', `config ${file}: field "health[${index}].port" is guest port ${check.port}, which is not forwarded`, {
        hint: `add {"guest": ${check.port}} to "ports", or check a forwarded port`,
      });
    }
  }
  return spec;
}

function bootSource(image: NonNullable<ConfigInput['image']>, baseDir: string): BootSource {
  const local = (path: string): string => (isAbsolute(path) ? path : resolve(baseDir, path));
  const optional = (path: string | undefined): string | undefined => (path === undefined ? undefined : local(path));
  if ('demo' in image) return { kind: 'demo' };
  if ('profile' in image) return { kind: 'profile', profile: image.profile };
  if ('url' in image) {
    const [algorithm, hex] = image.digest.split(':') as ['sha256' | 'sha512', string];
    return {
      kind: 'url',
      url: image.url,
      digest: { algorithm, hex },
      format: image.format ?? 'qcow2',
      compression: image.compression ?? compressionOf(image.url),
      kernel: optional(image.kernel),
      initrd: optional(image.initrd),
      append: image.append,
      userData: optional(image.userData),
      metaData: optional(image.metaData),
    };
  }
  if ('disk' in image) {
    return {
      kind: 'disk',
      path: local(image.disk),
      format: image.format ?? 'qcow2',
      kernel: optional(image.kernel),
      initrd: optional(image.initrd),
      append: image.append,
      userData: optional(image.userData),
      metaData: optional(image.metaData),
    };
  }
  return { kind: 'kernel', kernel: local(image.kernel), initrd: optional(image.initrd), append: image.append };
}

/** What the address's path says of a download's compression: `.xz`, `.zst` or `.zstd`; else none. */
function compressionOf(url: string): 'xz' | 'zstd' | undefined {
  const path = new URL(url).pathname.toLowerCase();
  if (path.endsWith('.xz')) return 'xz';
  if (path.endsWith('.zst') || path.endsWith('.zstd')) return 'zstd';
  return undefined;
}
