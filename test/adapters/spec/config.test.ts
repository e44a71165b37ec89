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

  it('an image URL is refused, naming the field, without a digest, with a wrong one, or not over http(s)', () => {
    const sha = `sha256:${'a'.repeat(64)}`;
    expect(configError({ image: { url: 'https://h/d.qcow2' } }).message).toMatch(/field "image\.digest" must be a non-empty string/);
    expect(configError({ image: { url: 'https://h/d.qcow2', digest: 'sha256:abc' } }).message).toMatch(/"image\.digest" must be "sha256:" and 64 lowercase hex digits/);
    expect(configError({ image: { url: 'https://h/d.qcow2', digest: `md5:${'a'.repeat(32)}` } }).hint).toContain('sha256sum FILE');
    expect(configError({ image: { url: 'ftp://h/d.qcow2', digest: sha } }).message).toMatch(/"image\.url" must be an http:\/\/ or https:\/\/ address/);
    expect(configError({ image: { url: 'not a url', digest: sha } }).message).toMatch(/"image\.url"/);
    expect(configError({ image: { url: 'https://h/d', digest: sha, compression: 'gzip' } }).message).toMatch(/"image\.compression" must be "xz" or "zstd"/);
    expect(configError({ image: { url: 'https://h/d', digest: sha, format: 'vmdk' } }).message).toMatch(/"image\.format" must be "qcow2" or "raw"/);
    expect(configError({ image: { url: 'https://h/d', digest: sha, disk: 'x' } }).message).toMatch(/"image\.url" is not a known field/);
    expect(configError({ image: { url: 'https://h/d', digest: sha, sha: 1 } }).message).toMatch(/"image\.sha" is not a known field/);
    expect(configError({ image: { url: 'https://h/d', digest: sha, metaData: 'm' } }).message).toMatch(/image\.metaData.*user-data/);
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
