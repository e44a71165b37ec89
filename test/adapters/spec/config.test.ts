import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from '../../../adapters/spec/config.js';
import { WarmvmError } from '../../../adapters/support/errors.js';
import { defaultSpec } from '../../../adapters/spec/vm.js';
import { useTempDirs } from '../../helpers/temp.js';

const where = { file: 'warmvm.json', baseDir: '/cfg' };

function configError(value: unknown): WarmvmError {
  try {
    parseConfig(value, where);
  } catch (error) {
    expect(error).toBeInstanceOf(WarmvmError);
    return error as WarmvmError;
  }
  throw new Error('expected the config to be rejected');
}

describe('parseConfig', () => {
  it('an empty object is the demo guest with defaults', () => {
    expect(parseConfig({}, where)).toEqual(defaultSpec());
  });

  it('reads every field and resolves relative paths from the config folder', () => {
    const spec = parseConfig(
      {
        memoryMb: 1024,
        cpus: 2,
        accel: 'tcg',
        image: { disk: 'disk.qcow2', kernel: '/boot/vmlinuz', append: 'root=/dev/vda' },
        ports: [{ guest: 80, host: 18080 }, { guest: 5432 }],
        health: [{ port: 80, path: '/ready', status: 204 }],
        bounds: { bootSeconds: 300 },
      },
      where,
    );
    expect(spec.memoryMb).toBe(1024);
    expect(spec.cpus).toBe(2);
    expect(spec.accel).toBe('tcg');
    expect(spec.boot).toEqual({
      kind: 'disk',
      path: '/cfg/disk.qcow2',
      format: 'qcow2',
      kernel: '/boot/vmlinuz',
      initrd: undefined,
      append: 'root=/dev/vda',
      userData: undefined,
      metaData: undefined,
    });
    expect(spec.ports).toEqual([
      { guest: 80, host: 18080 },
      { guest: 5432, host: undefined },
    ]);
    expect(spec.health).toEqual([{ port: 80, path: '/ready', status: 204 }]);
    expect(spec.bounds.bootMs).toBe(300_000);
    expect(spec.bounds.healthMs).toBe(defaultSpec().bounds.healthMs);
  });

  it('a profile brings its defaults (memory, vCPUs, rotation, longer bounds); fields override them', () => {
    const spec = parseConfig({ image: { profile: 'debian' }, memoryMb: 2048, bounds: { healthSeconds: 99 } }, where);
    expect(spec.boot).toEqual({ kind: 'profile', profile: 'debian' });
    expect(spec.memoryMb).toBe(2048);
    expect(spec.cpus).toBe(2);
    expect(spec.rotation).toEqual({ command: '/usr/local/bin/warmvm-rotate', names: defaultSpec().rotation?.names });
    expect(spec.bounds.healthMs).toBe(99_000);
    expect(spec.bounds.bootMs).toBeGreaterThan(defaultSpec().bounds.bootMs);
    expect(spec.readyMarker).toBe('warmvm: workload healthy');
    expect(configError({ image: { profile: 'ubuntu' } }).message).toMatch(/image\.profile.*debian.*"ubuntu"/);
  });

  it("reads a user image's cloud-init files, relative to the config; meta-data alone is refused", () => {
    const spec = parseConfig({ image: { disk: 'cloud.qcow2', userData: 'user-data', metaData: 'meta-data' } }, where);
    expect(spec.boot).toMatchObject({ kind: 'disk', userData: '/cfg/user-data', metaData: '/cfg/meta-data' });
    expect(configError({ image: { disk: 'cloud.qcow2', metaData: 'meta-data' } }).message).toMatch(/image\.metaData.*user-data/);
  });

  it('an image from a URL: its digest, format (qcow2 unless told), compression from the path suffix unless told, and the disk fields', () => {
    const sha = 'a'.repeat(64);
    expect(parseConfig({ image: { url: 'https://example.org/img/disk.qcow2', digest: `sha256:${sha}`, userData: 'user-data' } }, where).boot).toEqual({
      kind: 'url',
      url: 'https://example.org/img/disk.qcow2',
      digest: { algorithm: 'sha256', hex: sha },
      format: 'qcow2',
      compression: undefined,
      kernel: undefined,
      initrd: undefined,
      append: undefined,
      userData: '/cfg/user-data',
      metaData: undefined,
    });
    const boot = (image: Record<string, unknown>) => parseConfig({ image: { digest: `sha512:${'b'.repeat(128)}`, ...image } }, where).boot;
    expect(boot({ url: 'http://127.0.0.1:8000/disk.raw.xz', format: 'raw' })).toMatchObject({ format: 'raw', compression: 'xz', digest: { algorithm: 'sha512' } });
    expect(boot({ url: 'https://h/disk.qcow2.zst' })).toMatchObject({ compression: 'zstd' });
    expect(boot({ url: 'https://h/disk.qcow2.zstd?sig=1' })).toMatchObject({ compression: 'zstd' });
    expect(boot({ url: 'https://h/disk.img', compression: 'xz' })).toMatchObject({ compression: 'xz' });
    expect(parseConfig({ image: { url: 'https://h/d.qcow2', digest: `sha256:${sha}` } }, where).rotation).toBeUndefined();
  });

  it('reads a ready marker: one non-empty line', () => {
    expect(parseConfig({ readyMarker: 'cloud-init finished' }, where).readyMarker).toBe('cloud-init finished');
    expect(parseConfig({}, where).readyMarker).toBeUndefined();
    expect(configError({ readyMarker: 'a\nb' }).message).toMatch(/readyMarker.*one non-empty line/);
    expect(configError({ readyMarker: ' ' }).message).toMatch(/readyMarker/);
  });

  it('reads settings for the guest: NAME → one line; the Debian profile attaches an empty set', () => {
    expect(parseConfig({ settings: { LOG_LEVEL: 'debug', GREETING: 'hello world' } }, where).settings).toEqual({ LOG_LEVEL: 'debug', GREETING: 'hello world' });
    expect(parseConfig({}, where).settings).toBeUndefined();
    expect(parseConfig({ image: { profile: 'debian' } }, where).settings).toEqual({});
    expect(configError({ settings: { 'log-level': 'x' } }).message).toMatch(/settings\.log-level.*NAME/);
    expect(configError({ settings: { A: 'two\nlines' } }).message).toMatch(/settings\.A.*one line/);
    expect(configError({ settings: { A: 1 } }).message).toMatch(/settings\.A/);
  });

  it('names the field with a wrong type', () => {
    const error = configError({ memoryMb: '512' });
    expect(error.code).toBe('E_CONFIG');
    expect(error.message).toContain('"memoryMb"');
    expect(error.message).toContain('"512"');
  });

  it('names an unknown field and lists the known ones', () => {
    const error = configError({ memory: 512 });
    expect(error.message).toContain('"memory" is not a known field');
    expect(error.message).toContain('memoryMb');
  });

  it('names nested fields by their path', () => {
    expect(configError({ ports: [{ guest: 8080 }, { guest: 70000 }] }).message).toContain('"ports[1].guest"');
    expect(configError({ health: [{ port: 8080, path: 'health' }] }).message).toContain('"health[0].path"');
    expect(configError({ bounds: { bootSecs: 3 } }).message).toContain('"bounds.bootSecs"');
    expect(configError({ accel: 'xen' }).message).toContain('"accel"');
  });

  it('reads a rotation command and its secret names; a user image has none unless given', () => {
    expect(parseConfig({ rotation: { command: '/usr/bin/rotate', secrets: ['API_KEY', 'DB_PASS'] } }, where).rotation).toEqual({
      command: '/usr/bin/rotate',
      names: ['API_KEY', 'DB_PASS'],
    });
    expect(parseConfig({ rotation: false }, where).rotation).toBeUndefined();
    expect(parseConfig({ image: { disk: 'd.qcow2' } }, where).rotation).toBeUndefined();
    expect(parseConfig({}, where).rotation?.command).toBe('/usr/local/bin/rotate-secrets');
    // The ready marker is independent of rotation: with or without it, a user image keeps what it was given.
    expect(parseConfig({ image: { disk: 'd.qcow2' }, rotation: { command: '/r', secrets: ['A'] } }, where).rotation).toEqual({ command: '/r', names: ['A'] });
    expect(parseConfig({ image: { disk: 'd.qcow2' }, readyMarker: 'up' }, where).rotation).toBeUndefined();
    expect(parseConfig({ image: { disk: 'd.qcow2' }, readyMarker: 'up', rotation: { command: '/r', secrets: ['A'] } }, where).rotation?.command).toBe('/r');
    expect(configError({ rotation: { command: 'rotate', secrets: ['A'] } }).message).toContain('"rotation.command"');
    expect(configError({ rotation: { command: '/r', secrets: ['api-key'] } }).message).toContain('"rotation.secrets[0]"');
  });

  it('refuses a health check on a port that is not forwarded', () => {
    const error = configError({ ports: [{ guest: 80 }], health: [{ port: 8080, path: '/health' }] });
    expect(error.message).toContain('"health[0].port"');
    expect(error.hint).toContain('"ports"');
  });
});

describe('parseConfig: an image to download', () => {
  const sha256 = 'a'.repeat(64);
  const url = (image: Record<string, unknown>) => parseConfig({ image: { url: 'https://example.org/disk.qcow2', digest: `sha256:${sha256}`, ...image } }, where);

  it('reads the address, the digest, the format and the compression; local files relative to the config', () => {
    expect(url({ userData: 'user-data', kernel: '/boot/vmlinuz' }).boot).toEqual({
      kind: 'url',
      url: 'https://example.org/disk.qcow2',
      digest: { algorithm: 'sha256', hex: sha256 },
      format: 'qcow2',
      compression: undefined,
      kernel: '/boot/vmlinuz',
      initrd: undefined,
      append: undefined,
      userData: '/cfg/user-data',
      metaData: undefined,
    });
    expect(url({ format: 'raw', digest: `sha512:${'b'.repeat(128)}` }).boot).toMatchObject({ format: 'raw', digest: { algorithm: 'sha512', hex: 'b'.repeat(128) } });
    // Like a disk image of your own: no rotation command is known unless given.
    expect(url({}).rotation).toBeUndefined();
  });

  it("takes the compression from the address's path unless given", () => {
    const compression = (address: string, given?: string) => (url({ url: address, ...(given ? { compression: given } : {}) }).boot as { compression: unknown }).compression;
    expect(compression('https://example.org/disk.qcow2.xz')).toBe('xz');
    expect(compression('https://example.org/disk.raw.zst')).toBe('zstd');
    expect(compression('https://example.org/disk.raw.ZSTD?token=x')).toBe('zstd');
    expect(compression('https://example.org/disk.xz.qcow2')).toBeUndefined();
    expect(compression('https://example.org/disk.qcow2', 'xz')).toBe('xz');
    expect(configError({ image: { url: 'https://example.org/d', digest: `sha256:${sha256}`, compression: 'gzip' } }).message).toMatch(
      /"image\.compression" must be one of "xz", "zstd", got "gzip"/,
    );
  });

  it('takes http: and https: only', () => {
    expect(url({ url: 'http://192.168.1.2:8000/disk.qcow2' }).boot).toMatchObject({ url: 'http://192.168.1.2:8000/disk.qcow2' });
    for (const address of ['ftp://example.org/disk.qcow2', 'file:///var/disk.qcow2', 'example.org/disk.qcow2', 'https://']) {
      expect(configError({ image: { url: address, digest: `sha256:${sha256}` } }).message).toContain(
        `field "image.url" must be an http: or https: address of a disk image, got "${address}"`,
      );
    }
  });

  it('never shows the user info or query of an address it refuses: they may hold a password or a token', () => {
    const message = configError({ image: { url: 'ftp://ci:hunter2@example.org/disk.qcow2?X-Amz-Signature=abc123', digest: `sha256:${sha256}` } }).message;
    expect(message).toContain('got "ftp://…@example.org/disk.qcow2?…"');
    expect(message).not.toMatch(/hunter2|abc123/);
  });

  it('refuses a digest of the wrong length for its algorithm, naming both lengths; and uppercase or unknown ones', () => {
    const digest = (value: unknown) => configError({ image: { url: 'https://example.org/d', digest: value } });
    expect(digest(`sha512:${sha256}`).message).toContain('field "image.digest" must have 128 hex digits after "sha512:" (64 after "sha256:"), got 64');
    expect(digest(`sha256:${sha256}a`).message).toContain('must have 64 hex digits after "sha256:" (128 after "sha512:"), got 65');
    expect(digest(`sha256:${'A'.repeat(64)}`).message).toContain('must be "sha256:" and lowercase hex digits');
    expect(digest('md5:d41d8cd98f00b204e9800998ecf8427e').message).toContain('must be "sha256:" and 64 lowercase hex digits, or "sha512:" and 128, got "md5:');
    const missing = configError({ image: { url: 'https://example.org/d' } });
    expect(missing.message).toContain('field "image.digest" must be a non-empty string, got nothing');
    expect(missing.hint).toMatch(/for example "sha256:[0-9a-f]{64}"/);
  });

  it('refuses "url" with "disk", and any two sources at once', () => {
    const error = configError({ image: { url: 'https://example.org/d', digest: `sha256:${sha256}`, disk: 'd.qcow2' } });
    expect(error.message).toBe('config warmvm.json: field "image" names both "url" and "disk", which exclude each other');
    expect(error.hint).toContain('keep "url" or "disk"');
    expect(configError({ image: { profile: 'debian', kernel: 'k' } }).message).toContain('names both "profile" and "kernel"');
    // A disk (or a url) may have a kernel of its own: those are not two sources.
    expect(parseConfig({ image: { disk: 'd.qcow2', kernel: 'k' } }, where).boot.kind).toBe('disk');
  });

  it('refuses meta-data alone, as for a disk', () => {
    expect(configError({ image: { url: 'https://example.org/d', digest: `sha256:${sha256}`, metaData: 'm' } }).message).toMatch(/image\.metaData.*user-data/);
  });
});

describe('parseConfig: the error', () => {
  it('takes "$schema" and ignores it', () => {
    expect(parseConfig({ $schema: './node_modules/warmvm/config.schema.json' }, where)).toEqual(defaultSpec());
    expect(configError({ $schema: 1 }).message).toContain('"$schema"');
  });

  it('lists every wrong field, one line each, the unknown ones first', () => {
    const error = configError({ cpus: 0, ports: [{ gust: 80 }], memory: 1 });
    expect(error.code).toBe('E_CONFIG');
    expect(error.message.split('\n')).toEqual([
      'config warmvm.json: field "ports[0].gust" is not a known field (known: guest, host)',
      '  field "memory" is not a known field (known: $schema, memoryMb, cpus, accel, cpuModel, image, ports, health, agent, rotation, readyMarker, settings, snapshot, bounds)',
      '  field "cpus" must be between 1 and 256, got 0',
      '  field "ports[0].guest" must be a whole number, got nothing',
    ]);
    expect(error.hint).toBe('fix these 4 fields in warmvm.json; see "Config file" in the README');
  });

  it('names what was found, and a right value when the schema has one', () => {
    expect(configError({ image: { disk: 1 } }).message).toBe('config warmvm.json: field "image.disk" must be a non-empty string, got 1');
    expect(configError({ image: {} }).message).toContain('field "image" must name a "disk"');
    expect(configError({ rotation: true }).message).toContain('field "rotation" must be false or {"command"');
    expect(configError({ ports: [{ guest: 80 }, { guest: 80 }] }).message).toContain('field "ports[1].guest" forwards guest port 80 twice');
    expect(configError({ snapshot: { pull: 'latest' } }).hint).toContain('for example "ghcr.io/acme/backend-snapshot:main"');
    expect(configError([]).message).toBe('config warmvm.json: field "(top level)" must be an object, got []');
  });
});

describe('loadConfigFile', () => {
  const temp = useTempDirs();

  it('reports invalid JSON with the file name', async () => {
    const file = join(await temp(), 'bad.json');
    await writeFile(file, '{ "memoryMb": 256, }');
    await expect(loadConfigFile(file)).rejects.toMatchObject({ code: 'E_CONFIG_JSON', message: expect.stringContaining(file) });
  });

  it('reports a missing file', async () => {
    await expect(loadConfigFile('/nonexistent/warmvm.json')).rejects.toMatchObject({ code: 'E_CONFIG_READ' });
  });

  it('reads a valid file', async () => {
    const dir = await temp();
    const file = join(dir, 'ok.json');
    await writeFile(file, JSON.stringify({ memoryMb: 512, image: { kernel: 'vmlinuz', initrd: 'initrd.img' } }));
    const spec = await loadConfigFile(file);
    expect(spec.memoryMb).toBe(512);
    expect(spec.boot).toEqual({ kind: 'kernel', kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img'), append: undefined });
  });
});
