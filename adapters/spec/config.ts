import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { WarmvmError } from '../support/errors.js';
import { defaultSpec, GUEST_PROFILES, profileSpec, type AccelChoice, type BootSource, type HealthCheckSpec, type PortForward, type VmSpec } from './vm.js';

type Json = Record<string, unknown>;

const TOP_FIELDS = ['memoryMb', 'cpus', 'accel', 'cpuModel', 'image', 'ports', 'health', 'agent', 'rotation', 'readyMarker', 'settings', 'snapshot', 'bounds'] as const;
const ACCELS: readonly AccelChoice[] = ['auto', 'kvm', 'tcg', 'hvf'];

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
  const fail = (field: string, problem: string, hint?: string): never => {
    throw new WarmvmError('E_CONFIG', `config ${where.file}: field "${field}" ${problem}`, {
      hint: hint ?? `fix "${field}" in ${where.file}; see "Config file" in the README`,
    });
  };
  const obj = expectObject(value, '(top level)', fail);
  rejectUnknown(obj, TOP_FIELDS, '', fail);
  const image = obj.image === undefined ? undefined : parseImage(obj.image, where.baseDir, fail);
  // A profile brings its own defaults (memory, rotation, bounds); the fields below override them.
  const spec = image?.kind === 'profile' ? profileSpec(image.profile) : defaultSpec();
  if (obj.memoryMb !== undefined) spec.memoryMb = expectInt(obj.memoryMb, 'memoryMb', 64, 1024 * 1024, fail);
  if (obj.cpus !== undefined) spec.cpus = expectInt(obj.cpus, 'cpus', 1, 256, fail);
  if (obj.accel !== undefined) {
    if (typeof obj.accel !== 'string' || !ACCELS.includes(obj.accel as AccelChoice)) fail('accel', `must be one of ${ACCELS.join(', ')}, got ${show(obj.accel)}`);
    spec.accel = obj.accel as AccelChoice;
  }
  if (obj.cpuModel !== undefined) spec.cpuModel = expectString(obj.cpuModel, 'cpuModel', fail);
  if (obj.agent !== undefined) {
    if (typeof obj.agent !== 'boolean') fail('agent', `must be true or false, got ${show(obj.agent)}`);
    spec.agent = obj.agent as boolean;
  }
  if (image) spec.boot = image;
  if (obj.ports !== undefined) spec.ports = parsePorts(obj.ports, fail);
  if (obj.health !== undefined) spec.health = parseHealth(obj.health, fail);
  if (obj.rotation !== undefined) spec.rotation = parseRotation(obj.rotation, fail);
  else if (spec.boot.kind !== 'demo' && spec.boot.kind !== 'profile') spec.rotation = undefined; // only warmvm's own guests' commands are known
  if (obj.readyMarker !== undefined) {
    const marker = expectString(obj.readyMarker, 'readyMarker', fail);
    if (marker.trim() === '' || marker.includes('\n')) fail('readyMarker', 'must be one non-empty line of the serial console');
    spec.readyMarker = marker;
  }
  if (obj.settings !== undefined) {
    const settings = expectObject(obj.settings, 'settings', fail);
    spec.settings = {};
    for (const [key, value] of Object.entries(settings)) {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(key)) fail(`settings.${key}`, 'is not a NAME of [A-Z_][A-Z0-9_]*');
      const text = expectString(value, `settings.${key}`, fail);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
      if (/[\u0000-\u001f\u007f]/.test(text)) fail(`settings.${key}`, 'must be one line of printable text');
      spec.settings[key] = text;
    }
  }
  if (obj.snapshot !== undefined) {
    const snapshot = expectObject(obj.snapshot, 'snapshot', fail);
    rejectUnknown(snapshot, ['pull'], 'snapshot.', fail);
    if (snapshot.pull !== undefined) {
      const ref = expectString(snapshot.pull, 'snapshot.pull', fail);
      // The full grammar is checked where it is used; a config error names the shape early.
      if (!/^[^/\s]+\/[^\s]+$/.test(ref))
        fail('snapshot.pull', `must be a registry reference HOST[:PORT]/REPO[:TAG|@DIGEST], got ${show(ref)}`, 'for example "ghcr.io/acme/backend-snapshot:main"');
      spec.snapshotPull = ref;
    }
  }
  if (obj.bounds !== undefined) {
    const bounds = expectObject(obj.bounds, 'bounds', fail);
    rejectUnknown(bounds, ['launchSeconds', 'bootSeconds', 'healthSeconds', 'stopSeconds', 'incomingSeconds', 'rotateSeconds', 'captureSeconds'], 'bounds.', fail);
    const seconds = (key: string): number | undefined => (bounds[key] === undefined ? undefined : expectInt(bounds[key], `bounds.${key}`, 1, 3600, fail) * 1000);
    spec.bounds = {
      launchMs: seconds('launchSeconds') ?? spec.bounds.launchMs,
      bootMs: seconds('bootSeconds') ?? spec.bounds.bootMs,
      healthMs: seconds('healthSeconds') ?? spec.bounds.healthMs,
      stopMs: seconds('stopSeconds') ?? spec.bounds.stopMs,
      incomingMs: seconds('incomingSeconds') ?? spec.bounds.incomingMs,
      rotateMs: seconds('rotateSeconds') ?? spec.bounds.rotateMs,
      captureMs: seconds('captureSeconds') ?? spec.bounds.captureMs,
    };
  }
  for (const [index, check] of spec.health.entries()) {
    if (!spec.ports.some((port) => port.guest === check.port)) {
      fail(`health[${index}].port`, `is guest port ${check.port}, which is not forwarded`, `add {"guest": ${check.port}} to "ports", or check a forwarded port`);
    }
  }
  return spec;
}

type Fail = (field: string, problem: string, hint?: string) => never;

function parseImage(value: unknown, baseDir: string, fail: Fail): BootSource {
  const image = expectObject(value, 'image', fail);
  const path = (key: string): string | undefined => (image[key] === undefined ? undefined : absolute(expectString(image[key], `image.${key}`, fail), baseDir));
  if (image.demo === true) {
    rejectUnknown(image, ['demo'], 'image.', fail);
    return { kind: 'demo' };
  }
  if (image.profile !== undefined) {
    rejectUnknown(image, ['profile'], 'image.', fail);
    if (!GUEST_PROFILES.includes(image.profile as never)) fail('image.profile', `must be one of ${GUEST_PROFILES.join(', ')}, got ${show(image.profile)}`);
    return { kind: 'profile', profile: image.profile as 'debian' };
  }
  if (image.disk !== undefined) {
    rejectUnknown(image, ['disk', 'format', 'kernel', 'initrd', 'append', 'userData', 'metaData'], 'image.', fail);
    if (image.metaData !== undefined && image.userData === undefined) fail('image.metaData', 'is only used with image.userData (the cloud-init seed needs user-data)');
    const format = image.format ?? 'qcow2';
    if (format !== 'qcow2' && format !== 'raw') fail('image.format', `must be "qcow2" or "raw", got ${show(format)}`);
    return {
      kind: 'disk',
      path: path('disk') as string,
      format: format as 'qcow2' | 'raw',
      kernel: path('kernel'),
      initrd: path('initrd'),
      append: image.append === undefined ? undefined : expectString(image.append, 'image.append', fail),
      userData: path('userData'),
      metaData: path('metaData'),
    };
  }
  if (image.url !== undefined) return parseUrlImage(image, path, fail);
  if (image.kernel !== undefined) {
    rejectUnknown(image, ['kernel', 'initrd', 'append'], 'image.', fail);
    return {
      kind: 'kernel',
      kernel: path('kernel') as string,
      initrd: path('initrd'),
      append: image.append === undefined ? undefined : expectString(image.append, 'image.append', fail),
    };
  }
  return fail(
    'image',
    'must name a "disk" (a qcow2 or raw image), a "url" (with its "digest"), a "kernel" (with an optional "initrd"), a "profile" ("debian"), or be {"demo": true}',
  );
}

const DIGEST_HEX: Record<'sha256' | 'sha512', number> = { sha256: 64, sha512: 128 };

/** `{"url", "digest", "format"?, "compression"?, …}`: a disk image downloaded once, named by its digest. */
function parseUrlImage(image: Json, path: (key: string) => string | undefined, fail: Fail): BootSource {
  rejectUnknown(image, ['url', 'digest', 'format', 'compression', 'kernel', 'initrd', 'append', 'userData', 'metaData'], 'image.', fail);
  if (image.metaData !== undefined && image.userData === undefined) fail('image.metaData', 'is only used with image.userData (the cloud-init seed needs user-data)');
  const text = expectString(image.url, 'image.url', fail);
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) fail('image.url', `must be an http:// or https:// address, got ${show(text)}`);
  const digest = /^(sha256|sha512):([0-9a-f]+)$/.exec(expectString(image.digest, 'image.digest', fail));
  const algorithm = digest?.[1] as 'sha256' | 'sha512' | undefined;
  if (digest === null || algorithm === undefined || digest[2]?.length !== DIGEST_HEX[algorithm])
    fail(
      'image.digest',
      `must be "sha256:" and 64 lowercase hex digits, or "sha512:" and 128, got ${show(image.digest)}`,
      'the digest of the file at the URL, as `sha256sum FILE` prints it',
    );
  const format = image.format ?? 'qcow2';
  if (format !== 'qcow2' && format !== 'raw') fail('image.format', `must be "qcow2" or "raw", got ${show(format)}`);
  // The file's own name says how it is packed, unless the config says otherwise.
  const suffix = /\.(xz|zst|zstd)$/.exec(url?.pathname ?? '')?.[1];
  const compression = image.compression ?? (suffix === undefined ? undefined : suffix === 'xz' ? 'xz' : 'zstd');
  if (compression !== undefined && compression !== 'xz' && compression !== 'zstd') fail('image.compression', `must be "xz" or "zstd", got ${show(compression)}`);
  return {
    kind: 'url',
    url: text,
    digest: { algorithm: algorithm as 'sha256' | 'sha512', hex: digest?.[2] as string },
    format: format as 'qcow2' | 'raw',
    compression: compression as 'xz' | 'zstd' | undefined,
    kernel: path('kernel'),
    initrd: path('initrd'),
    append: image.append === undefined ? undefined : expectString(image.append, 'image.append', fail),
    userData: path('userData'),
    metaData: path('metaData'),
  };
}

function parseRotation(value: unknown, fail: Fail): VmSpec['rotation'] {
  if (value === false) return undefined;
  const rotation = expectObject(value, 'rotation', fail);
  rejectUnknown(rotation, ['command', 'secrets'], 'rotation.', fail);
  const command = expectString(rotation.command, 'rotation.command', fail);
  if (!command.startsWith('/')) fail('rotation.command', `must be an absolute path inside the guest, got ${show(command)}`);
  if (!Array.isArray(rotation.secrets) || rotation.secrets.length === 0)
    return fail('rotation.secrets', `must be a non-empty list of names like ["API_KEY"], got ${show(rotation.secrets)}`);
  const names = rotation.secrets.map((name, index) => {
    const text = expectString(name, `rotation.secrets[${index}]`, fail);
    if (!/^[A-Z_][A-Z0-9_]*$/.test(text)) fail(`rotation.secrets[${index}]`, `must match [A-Z_][A-Z0-9_]*, got ${show(text)}`);
    return text;
  });
  if (new Set(names).size !== names.length) fail('rotation.secrets', 'names a secret twice');
  return { command, names };
}

function parsePorts(value: unknown, fail: Fail): PortForward[] {
  if (!Array.isArray(value)) return fail('ports', `must be a list like [{"guest": 8080}], got ${show(value)}`);
  const seen = new Set<number>();
  return value.map((entry, index) => {
    const port = expectObject(entry, `ports[${index}]`, fail);
    rejectUnknown(port, ['guest', 'host'], `ports[${index}].`, fail);
    const guest = expectInt(port.guest, `ports[${index}].guest`, 1, 65535, fail);
    if (seen.has(guest)) fail(`ports[${index}].guest`, `forwards guest port ${guest} twice`);
    seen.add(guest);
    const host = port.host === undefined ? undefined : expectInt(port.host, `ports[${index}].host`, 1, 65535, fail);
    return { guest, host };
  });
}

function parseHealth(value: unknown, fail: Fail): HealthCheckSpec[] {
  if (!Array.isArray(value)) return fail('health', `must be a list like [{"port": 8080, "path": "/health"}], got ${show(value)}`);
  return value.map((entry, index) => {
    const check = expectObject(entry, `health[${index}]`, fail);
    rejectUnknown(check, ['port', 'path', 'status'], `health[${index}].`, fail);
    const path = check.path === undefined ? '/' : expectString(check.path, `health[${index}].path`, fail);
    if (!path.startsWith('/')) fail(`health[${index}].path`, `must start with "/", got ${show(path)}`);
    return {
      port: expectInt(check.port, `health[${index}].port`, 1, 65535, fail),
      path,
      status: check.status === undefined ? 200 : expectInt(check.status, `health[${index}].status`, 100, 599, fail),
    };
  });
}

function expectObject(value: unknown, field: string, fail: Fail): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(field, `must be an object, got ${show(value)}`);
  return value as Json;
}

function expectInt(value: unknown, field: string, min: number, max: number, fail: Fail): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) return fail(field, `must be a whole number, got ${show(value)}`);
  if (value < min || value > max) return fail(field, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function expectString(value: unknown, field: string, fail: Fail): string {
  if (typeof value !== 'string' || value === '') return fail(field, `must be a non-empty string, got ${show(value)}`);
  return value;
}

function rejectUnknown(obj: Json, known: readonly string[], prefix: string, fail: Fail): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) fail(`${prefix}${key}`, `is not a known field (known: ${known.join(', ')})`);
  }
}

function absolute(path: string, baseDir: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

function show(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}
