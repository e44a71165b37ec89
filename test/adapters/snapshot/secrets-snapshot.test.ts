import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSecrets, redactSecrets, secretsFingerprint, secretsToEnvLines, writeSecretsFile } from '../../../adapters/vm/secrets.js';
import { hashSpec, manifestMismatch, parseManifest, specFacts } from '../../../adapters/snapshot/manifest.js';
import { commitCapture, createCaptureDir, listCaptureDirs, readSnapshot, removeSnapshot, setAside, snapshotPaths } from '../../../adapters/snapshot/store.js';
import { FIXTURE_DEVICES, manifestFixture } from '../../helpers/manifest-fixture.js';
import { useTempDirs } from '../../helpers/temp.js';

const temp = useTempDirs();

describe('secrets', () => {
  it('are fresh hex, formatted as the guest reads them, fingerprinted as the demo guest serves them', () => {
    const a = generateSecrets(['API_KEY', 'DB_PASSWORD']);
    const b = generateSecrets(['API_KEY', 'DB_PASSWORD']);
    expect(a.get('API_KEY')).toMatch(/^[0-9a-f]{64}$/);
    expect(a.get('API_KEY')).not.toBe(b.get('API_KEY'));
    const lines = secretsToEnvLines(a);
    expect(lines).toBe(`API_KEY=${a.get('API_KEY')}\nDB_PASSWORD=${a.get('DB_PASSWORD')}\n`);
    expect(secretsFingerprint(a)).toBe(createHash('sha256').update(lines).digest('hex'));
    expect(() => generateSecrets(['api-key'])).toThrow(/not \[A-Z_\]/);
  });

  it('are redacted from text a person reads', () => {
    const secrets = generateSecrets(['TOKEN']);
    expect(redactSecrets(`failed with ${secrets.get('TOKEN')} in it`, secrets)).toBe('failed with [redacted] in it');
  });

  it('are written for the user only (0600), replacing the old file whole', async () => {
    const file = join(await temp(), 'secrets.env');
    await writeFile(file, 'old', { mode: 0o644 });
    const secrets = generateSecrets(['API_KEY']);
    await writeSecretsFile(file, secrets);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toBe(secretsToEnvLines(secrets));
  });
});

const manifest = manifestFixture();
const host = { qemuVersion: '10.0.2', machineType: 'pc-q35-10.0', accel: 'tcg', cpuModel: 'qemu64', specHash: 'abc', deviceArgv: FIXTURE_DEVICES };

describe('snapshot manifest', () => {
  it('matches only the same QEMU, machine type, accelerator, CPU and spec, naming what differs', () => {
    expect(manifestMismatch(manifest, host)).toBeUndefined();
    expect(manifestMismatch(manifest, { ...host, qemuVersion: '10.1.0' })).toBe("the snapshot's QEMU version is 10.0.2, this host's is 10.1.0");
    expect(manifestMismatch(manifest, { ...host, machineType: 'pc-q35-10.1' })).toContain('machine type');
    expect(manifestMismatch(manifest, { ...host, accel: 'kvm' })).toContain('accelerator');
    expect(manifestMismatch(manifest, { ...host, specHash: 'def' })).toContain('spec');
    // The same config launched by a warmvm that lays out QEMU's devices otherwise.
    expect(manifestMismatch(manifest, { ...host, deviceArgv: [...FIXTURE_DEVICES, '-device', 'virtio-rng-pci'] })).toMatch(/QEMU devices differ/);
  });

  it("names the parts of the config that changed since the capture, never a setting's value", () => {
    const parts = { memoryMb: 256, cpus: 1, ports: [{ guest: 8080 }], image: 'demo-1', seed: undefined, settings: { GREETING: 'hello' } };
    const changed = { ...parts, memoryMb: 512, image: 'demo-2', settings: { GREETING: 'secretish value' } };
    const captured = { ...manifest, specHash: hashSpec(parts), spec: specFacts(parts) };
    const now = { ...host, specHash: hashSpec(changed), spec: specFacts(changed) };
    const reason = manifestMismatch(captured, now);
    expect(reason).toBe('the config changed since the capture: image demo-1 → demo-2, memoryMb 256 → 512, settings');
    expect(reason).not.toContain('secretish');
    expect(JSON.stringify(specFacts(changed))).not.toContain('secretish');
    expect(manifestMismatch(captured, { ...host, specHash: hashSpec(parts), spec: specFacts(parts) })).toBeUndefined();
    // A part that appears, and a long value, shortened.
    const longer = { ...parts, seed: `/images/${'x'.repeat(200)}.iso` };
    expect(manifestMismatch(captured, { ...host, specHash: hashSpec(longer), spec: specFacts(longer) })).toMatch(
      /^the config changed since the capture: seed none → \/images\/x+…$/,
    );
  });

  it('hashes a spec by value, whatever the key order', () => {
    expect(hashSpec({ a: 1, b: [1, 2] })).toBe(hashSpec({ b: [1, 2], a: 1 }));
    expect(hashSpec({ a: 1 })).not.toBe(hashSpec({ a: 2 }));
  });

  it('refuses what is not a manifest', () => {
    expect(() => parseManifest('{"format": 2}')).toThrow(/not a warmvm snapshot manifest \(format 2\)/);
    // The format before lazy restore is named, so a snapshot set aside for it says why.
    expect(() => parseManifest('{"format": 1, "argv": []}')).toThrow(/format 1 \(a compressed mapped-ram state.*resumes format 2/);
    expect(parseManifest(JSON.stringify(manifest)).deviceArgv).toEqual(manifest.deviceArgv);
  });
});

describe('snapshot store', () => {
  it('shows nothing until a capture is committed, and replaces the old snapshot whole', async () => {
    const root = join(await temp(), 'snapshots');
    const paths = snapshotPaths(root, 'web');
    expect(await readSnapshot(paths)).toEqual({ kind: 'missing' });
    const first = await createCaptureDir(paths);
    await writeFile(join(first, 'manifest.json'), JSON.stringify(manifest));
    expect(await readSnapshot(paths)).toEqual({ kind: 'missing' });
    await commitCapture(first, paths);
    expect(await readSnapshot(paths)).toMatchObject({ kind: 'found', manifest: { qemuVersion: '10.0.2' } });
    const second = await createCaptureDir(paths);
    await writeFile(join(second, 'manifest.json'), JSON.stringify({ ...manifest, qemuVersion: '10.0.3' }));
    await commitCapture(second, paths);
    expect(await readSnapshot(paths)).toMatchObject({ kind: 'found', manifest: { qemuVersion: '10.0.3' } });
    expect((await readdir(root)).sort()).toEqual(['web']);
  });

  it('removes captures abandoned by a dead warmvm, and keeps a live one', async () => {
    const root = join(await temp(), 'snapshots');
    await mkdir(join(root, '.capture-999999999-1'), { recursive: true });
    const paths = snapshotPaths(root, 'web');
    const mine = await createCaptureDir(paths);
    expect(await listCaptureDirs(root)).toEqual([mine.slice(root.length + 1)]);
  });

  it('sets an unusable snapshot aside with its reason, keeps only the newest two, and reset removes them all', async () => {
    const root = join(await temp(), 'snapshots');
    const paths = snapshotPaths(root, 'web');
    for (let i = 0; i < 3; i += 1) {
      await mkdir(paths.dir, { recursive: true });
      await writeFile(paths.manifest, '{}');
      const aside = await setAside(paths, `reason ${i}`);
      expect(await readFile(join(aside as string, 'reason.txt'), 'utf8')).toBe(`reason ${i}\n`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(await readSnapshot(paths)).toEqual({ kind: 'missing' });
    expect((await readdir(root)).filter((entry) => entry.startsWith('web.set-aside-'))).toHaveLength(2);
    expect(await removeSnapshot(paths)).toHaveLength(2);
    expect(await readdir(root)).toEqual([]);
  });

  it('says why a snapshot cannot be read', async () => {
    const root = join(await temp(), 'snapshots');
    const paths = snapshotPaths(root, 'web');
    await mkdir(paths.dir, { recursive: true });
    expect(await readSnapshot(paths)).toEqual({ kind: 'unreadable', reason: 'manifest.json is missing' });
    await writeFile(paths.manifest, 'not json');
    expect(await readSnapshot(paths)).toMatchObject({ kind: 'unreadable', reason: expect.stringContaining('cannot be read') });
  });
});
