import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../adapters/instance/paths.js';
import { RegistryClient } from '../../adapters/registry/client.js';
import { parseReference } from '../../adapters/registry/reference.js';
import { LAYER_MEDIA_TYPE, ROLE_ANNOTATION } from '../../adapters/snapshot/artifact.js';
import { listCaptureDirs, listSnapshotKeys } from '../../adapters/snapshot/store.js';
import { readTraceFile } from '../../adapters/trace/file.js';
import type { ImageManifest } from '../../adapters/oci/types.js';
import { cli, E2E_HOME, startCli, type CliResult } from '../helpers/cli.js';
import { secretFingerprint } from '../helpers/fingerprint.js';
import { dockerAuth, startRegistry, writeDockerConfig, type TestRegistry } from '../helpers/registry.js';
import { caseConfig, caseVariantConfig, removeSnapshotsCapturedBy, snapshotOf } from '../helpers/store-check.js';

// Snapshots that travel, on the real QEMU, the demo guest and Debian's docker-registry: pushed
// from one home, pulled into empty homes at other paths, resumed there with no cold boot.
const TIMEOUT = 300_000;
const CAPTURER = 'reg-a';
const execFileAsync = promisify(execFile);

describe('snapshots through a real OCI registry', () => {
  let registry: TestRegistry;
  let config = '';
  let ref = '';
  let pushed: CliResult;
  const homes: string[] = [];
  /** An empty home at a path of its own, as on a CI machine that never captured. */
  const newHome = async (): Promise<string> => {
    const home = await mkdtemp(join(tmpdir(), 'wvm-h-'));
    homes.push(home);
    return home;
  };
  const inHome = (home: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> => cli(args, { WARMVM_HOME: home, ...env });

  beforeAll(async () => {
    await cli(['stop', '--name', CAPTURER]);
    await cli(['reset', '--name', CAPTURER, '--snapshot']);
    await removeSnapshotsCapturedBy([CAPTURER]);
    config = await caseConfig('registry');
    registry = await startRegistry();
    ref = `${registry.registry}/warmvm/demo:e2e`;
    const first = await cli(['start', '--name', CAPTURER, '--json', '--config', config]);
    expect(first.json.path, first.stderr).toBe('cold+capture+resume');
    expect((await cli(['stop', '--name', CAPTURER])).exitCode).toBe(0);
    // Every case starts from this push.
    pushed = await cli(['snapshot', 'push', ref, '--name', CAPTURER, '--json']);
    expect(pushed.exitCode, pushed.stderr).toBe(0);
  }, 900_000);

  afterAll(async () => {
    for (const home of homes) {
      for (const name of await readdir(homePaths(home).instances).catch(() => [] as string[])) await inHome(home, ['stop', '--name', name]);
      await rm(home, { recursive: true, force: true });
    }
    await cli(['stop', '--name', CAPTURER]);
    await removeSnapshotsCapturedBy([CAPTURER]);
    await registry?.stop();
  });

  it(
    'push from one home, pull into an empty home at another path: its start resumes healthy, with no cold boot; a second push sends nothing',
    async () => {
      expect(pushed.json).toMatchObject({ ok: true, key: snapshotOf(CAPTURER).key });
      expect(pushed.json.sentBlobs).toBe(pushed.json.blobs);
      const again = await cli(['snapshot', 'push', ref, '--name', CAPTURER, '--json']);
      expect(again.json, again.stderr).toMatchObject({ ok: true, sentBlobs: 0, sentBytes: 0 });

      const home = await newHome();
      const pulled = await inHome(home, ['snapshot', 'pull', ref, '--json']);
      expect(pulled.exitCode, pulled.stderr).toBe(0);
      expect(pulled.json).toMatchObject({ ok: true, key: snapshotOf(CAPTURER).key, imagesInstalled: [expect.stringContaining('/images/demo-')] });
      expect(await listSnapshotKeys(homePaths(home).snapshots)).toEqual([snapshotOf(CAPTURER).key]);

      const started = await inHome(home, ['start', '--name', 'reg-b', '--json', '--config', config]);
      expect(started.json.outcome, started.stderr).toBe('healthy');
      expect(started.json.path).toBe('resume');
      expect(started.json.snapshot).toBe(snapshotOf(CAPTURER).key);
      // No demo guest was built in this home: the pull brought it.
      expect(started.stderr).not.toContain('built in');
      expect((await secretFingerprint(started)).length).toBe(64);
      expect((await inHome(home, ['stop', '--name', 'reg-b'])).exitCode).toBe(0);

      // A pull of what the store holds already moves no blob and changes nothing.
      const served = registry.servedBytes();
      const twice = await inHome(home, ['snapshot', 'pull', ref, '--json']);
      expect(twice.json, twice.stderr).toMatchObject({ ok: true, receivedBlobs: 0, replaced: false });
      expect(registry.servedBytes() - served).toBeLessThan(64 << 10);
    },
    TIMEOUT,
  );

  it(
    'a config naming the registry: a start in an empty home pulls and resumes (pull+resume); a pull that fails boots cold, with the reason as a warning',
    async () => {
      const home = await newHome();
      const pulling = await caseVariantConfig('registry', 'pull', { snapshot: { pull: ref } });
      const started = await inHome(home, ['start', '--name', 'reg-c', '--json', '--config', pulling]);
      expect(started.json.outcome, started.stderr).toBe('healthy');
      expect(started.json.path).toBe('pull+resume');
      expect(started.json.warnings).toEqual([]);
      // The guest image came with the snapshot, before the image step would have built it: the capturing home's build, byte for byte.
      const [image] = (await readdir(homePaths(home).images)).filter((entry) => entry.startsWith('demo-'));
      expect(image).toBeDefined();
      const here = await readFile(join(homePaths(home).images, image as string, 'manifest.json'), 'utf8');
      expect(here).toBe(await readFile(join(homePaths(E2E_HOME).images, image as string, 'manifest.json'), 'utf8'));
      const states = (await readTraceFile(join(homePaths(home).instances, 'reg-c', 'trace.jsonl'))).map((entry) => entry.state);
      expect(states).toContain('start.pulling');
      expect(states.some((state) => state?.startsWith('coldBoot.'))).toBe(false);
      expect((await inHome(home, ['stop', '--name', 'reg-c'])).exitCode).toBe(0);

      // Nothing under that tag: the start boots cold and captures, and says why it did not pull.
      await inHome(home, ['reset', '--name', 'reg-c', '--snapshot']);
      const missing = await caseVariantConfig('registry', 'pull-missing', { snapshot: { pull: `${registry.registry}/warmvm/demo:no-such-tag` } });
      const cold = await inHome(home, ['start', '--name', 'reg-c', '--json', '--config', missing]);
      expect(cold.json.outcome, cold.stderr).toBe('healthy');
      expect(cold.json.path).toBe('cold+capture+resume');
      expect(cold.json.warnings).toEqual([expect.stringMatching(/snapshot pull failed.*no-such-tag/)]);
      expect((await inHome(home, ['stop', '--name', 'reg-c'])).exitCode).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'a snapshot this host cannot resume is refused by its config, before any large blob is served',
    async () => {
      const client = new RegistryClient(parseReference(ref));
      const found = await client.getManifest('e2e');
      const manifest = JSON.parse(found.body.toString('utf8')) as ImageManifest;
      const config = JSON.parse((await client.getBlob(manifest.config.digest, 1 << 20)).toString('utf8')) as { manifest: { qemuVersion: string } };
      config.manifest.qemuVersion = '9.9.9';
      const foreign = Buffer.from(JSON.stringify(config));
      const dir = await newHome();
      const file = join(dir, 'config.json');
      await writeFile(file, foreign);
      const digest = `sha256:${createHash('sha256').update(foreign).digest('hex')}` as const;
      await client.pushBlob(file, digest, foreign.length);
      const body = Buffer.from(JSON.stringify({ ...manifest, config: { ...manifest.config, digest, size: foreign.length } }));
      await client.putManifest('foreign', body, manifest.mediaType);
      const largest = Math.max(...manifest.layers.map((layer) => layer.size));
      expect(largest).toBeGreaterThan(1 << 20);
      expect(manifest.layers.every((layer) => layer.mediaType === LAYER_MEDIA_TYPE && layer.annotations?.[ROLE_ANNOTATION] !== undefined)).toBe(true);

      const home = await newHome();
      const served = registry.servedBytes();
      const refused = await inHome(home, ['snapshot', 'pull', `${registry.registry}/warmvm/demo:foreign`, '--json']);
      expect(refused.exitCode).toBe(1);
      expect(refused.json.error).toMatchObject({ code: 'E_SNAPSHOT_MISMATCH', message: expect.stringContaining('QEMU 9.9.9') });
      // The manifest and the config only: a few KB, against the memory layer's megabytes.
      expect(registry.servedBytes() - served).toBeLessThan(64 << 10);
      expect(await listSnapshotKeys(homePaths(home).snapshots)).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'a pull killed halfway leaves no snapshot, and the next pull continues where it stopped',
    async () => {
      const home = await newHome();
      const head = JSON.parse((await new RegistryClient(parseReference(ref)).getManifest('e2e')).body.toString('utf8')) as ImageManifest;
      const total = head.layers.reduce((sum, layer) => sum + layer.size, 0);
      // Slow enough to be caught midway.
      registry.setProxy({ throttleBytesPerSecond: Math.ceil(total / 4) });
      const served = registry.servedBytes();
      const child = startCli(['snapshot', 'pull', ref, '--json'], { WARMVM_HOME: home });
      const blobs = join(home, 'blobs', 'sha256');
      for (let waited = 0; registry.servedBytes() - served < total / 3; waited += 20) {
        expect(waited, 'the pull never got a third of the way').toBeLessThan(60_000);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      child.kill('SIGKILL');
      await child.catch(() => undefined);
      registry.setProxy({});
      expect(await listSnapshotKeys(homePaths(home).snapshots)).toEqual([]);
      expect(await listCaptureDirs(homePaths(home).snapshots)).toEqual([]);
      const partial = (await readdir(blobs)).filter((entry) => entry.endsWith('.partial'));
      expect(partial.length).toBeGreaterThan(0);

      const before = registry.servedBytes();
      const resumed = await inHome(home, ['snapshot', 'pull', ref, '--json']);
      expect(resumed.exitCode, resumed.stderr).toBe(0);
      const fetched = registry.servedBytes() - before;
      expect(fetched).toBeLessThan(total - total / 4);
      expect(await listSnapshotKeys(homePaths(home).snapshots)).toEqual([snapshotOf(CAPTURER).key]);
      expect((await readdir(blobs)).filter((entry) => entry.endsWith('.partial'))).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'export and import round-trip an OCI image layout tar that resumes in an empty home',
    async () => {
      const dir = await newHome();
      const file = join(dir, 'demo.oci.tar');
      const exported = await cli(['snapshot', 'export', file, '--name', CAPTURER, '--json']);
      expect(exported.exitCode, exported.stderr).toBe(0);
      const { stdout } = await execFileAsync('tar', ['-tf', file]);
      const entries = stdout.trim().split('\n');
      expect(entries).toEqual(expect.arrayContaining(['oci-layout', 'index.json']));
      expect(entries.filter((entry) => entry.startsWith('blobs/sha256/')).length).toBeGreaterThanOrEqual(5);
      const index = JSON.parse((await execFileAsync('tar', ['-xOf', file, 'index.json'])).stdout) as { manifests: { annotations?: Record<string, string> }[] };
      expect(index.manifests[0]?.annotations?.['org.opencontainers.image.ref.name']).toBe('latest');

      const home = await newHome();
      const imported = await inHome(home, ['snapshot', 'import', file, '--json']);
      expect(imported.exitCode, imported.stderr).toBe(0);
      expect(imported.json).toMatchObject({ ok: true, key: snapshotOf(CAPTURER).key });
      const started = await inHome(home, ['start', '--name', 'reg-d', '--json', '--config', config]);
      expect(started.json.outcome, started.stderr).toBe('healthy');
      expect(started.json.path).toBe('resume');
      expect((await inHome(home, ['stop', '--name', 'reg-d'])).exitCode).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'with htpasswd auth: the credentials in config.json push; a wrong password ends in a clear error that never shows it',
    async () => {
      const guarded = await startRegistry({ auth: { kind: 'htpasswd', username: 'ci', password: 'right-horse-battery' } });
      try {
        const guardedRef = `${guarded.registry}/warmvm/demo:auth`;
        const good = await newHome();
        await writeDockerConfig(good, { auths: { [guarded.registry]: dockerAuth('ci', 'right-horse-battery') } });
        const pushed = await cli(['snapshot', 'push', guardedRef, '--name', CAPTURER, '--json'], { DOCKER_CONFIG: good });
        expect(pushed.exitCode, pushed.stderr).toBe(0);
        const home = await newHome();
        const pulled = await inHome(home, ['snapshot', 'pull', guardedRef, '--json'], { DOCKER_CONFIG: good });
        expect(pulled.exitCode, pulled.stderr).toBe(0);

        const bad = await newHome();
        await writeDockerConfig(bad, { auths: { [guarded.registry]: dockerAuth('ci', 'wrong-pony-staple') } });
        const refused = await cli(['snapshot', 'push', guardedRef, '--name', CAPTURER], { DOCKER_CONFIG: bad });
        expect(refused.exitCode).toBe(1);
        expect(refused.stderr).toMatch(/refused the credentials/);
        expect(refused.stderr).toContain('config.json');
        expect(refused.stderr + refused.stdout).not.toContain('wrong-pony-staple');
        expect(refused.stderr + refused.stdout).not.toContain(Buffer.from('ci:wrong-pony-staple').toString('base64'));
      } finally {
        await guarded.stop();
      }
    },
    TIMEOUT,
  );

  // Last: it damages a blob in the registry's storage for good.
  it(
    'a blob tampered with in the registry is refused by its digest, and nothing reaches the store',
    async () => {
      const head = JSON.parse((await new RegistryClient(parseReference(ref)).getManifest('e2e')).body.toString('utf8')) as ImageManifest;
      const memory = head.layers.find((layer) => layer.annotations?.[ROLE_ANNOTATION] === 'memory');
      if (!memory) throw new Error('no memory layer');
      const data = registry.blobDataPath(memory.digest);
      const handle = await open(data, 'r+');
      await handle.write(Buffer.alloc(4096, 0x5a), 0, 4096, Math.floor((await stat(data)).size / 2));
      await handle.close();
      const home = await newHome();
      const pulled = await inHome(home, ['snapshot', 'pull', ref, '--json']);
      expect(pulled.exitCode).toBe(1);
      expect(pulled.json.error).toMatchObject({ code: 'E_REGISTRY_DIGEST' });
      expect(await listSnapshotKeys(homePaths(home).snapshots)).toEqual([]);
      const leftovers = await readdir(join(home, 'blobs', 'sha256')).catch(() => [] as string[]);
      expect(leftovers.filter((entry) => entry.startsWith(memory.digest.slice(7)))).toEqual([]);
    },
    TIMEOUT,
  );
});
