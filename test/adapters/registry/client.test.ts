import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Digest, OCI_MANIFEST_MEDIA_TYPE } from '../../../adapters/oci/types.js';
import { isLoopbackHost, RegistryClient, registryBaseUrl } from '../../../adapters/registry/client.js';
import { parseReference } from '../../../adapters/registry/reference.js';
import { describeError } from '../../../adapters/support/errors.js';
import { externalAddress, sha256Digest, type TestRegistry, useRegistries } from '../../helpers/registry.js';

const registries = useRegistries();
const BLOB_BYTES = 40 << 20;
const CHUNK_BYTES = 8 << 20;

let registry: TestRegistry;
let dir: string;
let blobFile: string;
let blob: Buffer;
let digest: Digest;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A file of random bytes in the shared folder, with its digest. */
async function randomBlob(name: string, bytes: number): Promise<{ file: string; data: Buffer; digest: Digest }> {
  const data = randomBytes(bytes);
  const file = join(dir, name);
  await writeFile(file, data);
  return { file, data, digest: sha256Digest(data) };
}

function client(repository: string, chunkBytes = CHUNK_BYTES): RegistryClient {
  return new RegistryClient(parseReference(`${registry.registry}/${repository}`), { chunkBytes, credentials: null });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wvm-regc-'));
  registry = await registries();
  ({ file: blobFile, data: blob, digest } = await randomBlob('blob', BLOB_BYTES));
  // The pulls below read it from here; the first test pushes it again, elsewhere, to watch the upload.
  await client('warmvm/chunked').pushBlob(blobFile, digest, BLOB_BYTES);
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

// Every case for each way of receiving a blob: curl (when installed, as here) and Node's fetch.
describe.each(['curl', 'fetch'] as const)('RegistryClient on a real registry (distribution 2.8.2), receiving with %s', (downloader) => {
  const client = (repository: string, chunkBytes = CHUNK_BYTES): RegistryClient =>
    new RegistryClient(parseReference(`${registry.registry}/${repository}`), { chunkBytes, credentials: null, downloader });

  it('pushes a blob in chunks streamed from the file and pulls it back byte for byte', async () => {
    const snapshots = client(`warmvm/pushed-${downloader}`);
    const progress: number[] = [];
    expect(await snapshots.pushBlob(blobFile, digest, BLOB_BYTES, { onProgress: (done) => progress.push(done) })).toEqual({ sent: true });
    const patches = registry.requests().filter((request) => request.method === 'PATCH' && request.path.startsWith(`/v2/warmvm/pushed-${downloader}/blobs/uploads/`));
    expect(patches.map((request) => request.status)).toEqual([202, 202, 202, 202, 202]);
    expect(progress.at(-1)).toBe(BLOB_BYTES);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(await snapshots.hasBlob(digest)).toBe(true);

    const dest = join(dir, `pulled-${downloader}`);
    await snapshots.pullBlob(digest, BLOB_BYTES, dest);
    expect((await readFile(dest)).equals(blob)).toBe(true);
    expect(await exists(`${dest}.partial`)).toBe(false);
  });

  it('does not send a blob the repository has already', async () => {
    const snapshots = client('warmvm/twice');
    const small = await randomBlob('twice', 3 << 20);
    expect(await snapshots.pushBlob(small.file, small.digest, small.data.length)).toEqual({ sent: true });
    const before = registry.requests().length;
    const progress: [number, number][] = [];
    expect(await snapshots.pushBlob(small.file, small.digest, small.data.length, { onProgress: (done, total) => progress.push([done, total]) })).toEqual({ sent: false });
    expect(
      registry
        .requests()
        .slice(before)
        .map((request) => request.method),
    ).toEqual(['HEAD']);
    expect(progress).toEqual([[small.data.length, small.data.length]]);
  });

  it('refuses to push a file that is not the blob it is pushed as, and cancels the upload', async () => {
    const snapshots = client('warmvm/wrong', 1 << 20);
    const small = await randomBlob('wrong', 3 << 20);
    const claimed = sha256Digest(Buffer.from('something else'));
    await expect(snapshots.pushBlob(small.file, claimed, small.data.length + 1)).rejects.toMatchObject({
      code: 'E_REGISTRY_DIGEST',
      message: expect.stringContaining(`has ${small.data.length} bytes, not the`),
    });
    const before = registry.requests().length;
    const error = await snapshots.pushBlob(small.file, claimed, small.data.length).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_REGISTRY_DIGEST' });
    expect((error as Error).message).toContain(
      'found that the bytes sent do not have that digest (HTTP 400 Bad Request, DIGEST_INVALID: provided digest did not match uploaded content',
    );
    expect(
      registry
        .requests()
        .slice(before)
        .map((request) => `${request.method} ${request.status}`),
    ).toEqual(['HEAD 404', 'POST 202', 'PATCH 202', 'PATCH 202', 'PATCH 202', 'PUT 400', 'DELETE 204']);
    expect(await snapshots.hasBlob(claimed)).toBe(false);
  });

  it('continues a cut pull with Range: only the missing half comes over the wire', async () => {
    const snapshots = client('warmvm/chunked');
    const dest = join(dir, `resumed-${downloader}`);
    const half = BLOB_BYTES / 2;
    await writeFile(`${dest}.partial`, blob.subarray(0, half));
    const before = registry.servedBytes();
    await snapshots.pullBlob(digest, BLOB_BYTES, dest);
    expect(registry.servedBytes() - before).toBe(BLOB_BYTES - half);
    expect(registry.requests().at(-1)).toMatchObject({ method: 'GET', status: 206 });
    expect((await readFile(dest)).equals(blob)).toBe(true);
  });

  it('keeps what an aborted pull got, and the next pull fetches only the rest', async () => {
    const snapshots = client('warmvm/chunked');
    const dest = join(dir, `aborted-${downloader}`);
    const controller = new AbortController();
    const pulled = snapshots.pullBlob(digest, BLOB_BYTES, dest, {
      signal: controller.signal,
      onProgress: (done) => {
        if (done >= BLOB_BYTES / 4) controller.abort(new Error('enough'));
      },
    });
    await expect(pulled).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(await exists(dest)).toBe(false);
    const kept = (await stat(`${dest}.partial`)).size;
    expect(kept).toBeGreaterThanOrEqual(BLOB_BYTES / 4);
    expect(kept).toBeLessThan(BLOB_BYTES);

    const before = registry.servedBytes();
    await snapshots.pullBlob(digest, BLOB_BYTES, dest);
    expect(registry.servedBytes() - before).toBe(BLOB_BYTES - kept);
    expect((await readFile(dest)).equals(blob)).toBe(true);
  });

  it('starts over when the registry answers a Range request with the whole blob', async () => {
    const snapshots = client('warmvm/chunked');
    const dest = join(dir, `range-ignored-${downloader}`);
    await writeFile(`${dest}.partial`, blob.subarray(0, BLOB_BYTES / 2));
    registry.setProxy({ dropRange: true });
    try {
      const before = registry.servedBytes();
      await snapshots.pullBlob(digest, BLOB_BYTES, dest);
      expect(registry.servedBytes() - before).toBe(BLOB_BYTES);
      expect(registry.requests().at(-1)).toMatchObject({ method: 'GET', status: 200 });
    } finally {
      registry.setProxy({});
    }
    expect((await readFile(dest)).equals(blob)).toBe(true);
  });

  it('starts over once when a continued pull does not match: the partial file was the damaged part', async () => {
    const snapshots = client('warmvm/chunked');
    const dest = join(dir, `wrong-start-${downloader}`);
    const kept = 1 << 20;
    await writeFile(`${dest}.partial`, randomBytes(kept));
    const before = registry.servedBytes();
    await snapshots.pullBlob(digest, BLOB_BYTES, dest);
    // The rest after the bad start, then the whole.
    expect(registry.servedBytes() - before).toBe(BLOB_BYTES - kept + BLOB_BYTES);
    // fetch: the rest (206), then the whole (200); curl: each time one byte, then curl the rest after it.
    const statuses = downloader === 'fetch' ? [206, 200] : [206, 206, 206, 206];
    expect(
      registry
        .requests()
        .slice(-statuses.length)
        .map((request) => request.status),
    ).toEqual(statuses);
    expect((await readFile(dest)).equals(blob)).toBe(true);
    expect(await exists(`${dest}.partial`)).toBe(false);
  });

  it('refuses a blob whose bytes in the registry were tampered with, and leaves no file', async () => {
    const snapshots = client('warmvm/tampered');
    const small = await randomBlob('tampered', 3 << 20);
    await snapshots.pushBlob(small.file, small.digest, small.data.length);
    const data = await open(registry.blobDataPath(small.digest), 'r+');
    try {
      await data.write(Buffer.from('not the bytes that were pushed'), 0, 30, 1 << 20);
    } finally {
      await data.close();
    }
    const dest = join(dir, `tampered-pulled-${downloader}`);
    const error = await snapshots.pullBlob(small.digest, small.data.length, dest).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_REGISTRY_DIGEST' });
    expect((error as Error).message).toMatch(
      new RegExp(`^the blob ${small.digest} from ${registry.registry}/warmvm/tampered has digest sha256:[0-9a-f]{64}, not the ${small.digest} its manifest names$`),
    );
    expect(await exists(dest)).toBe(false);
    expect(await exists(`${dest}.partial`)).toBe(false);
    await expect(snapshots.getBlob(small.digest, 8 << 20)).rejects.toMatchObject({ code: 'E_REGISTRY_DIGEST' });
  });

  it('refuses a blob longer than its manifest says before downloading it', async () => {
    const snapshots = client('warmvm/chunked');
    const dest = join(dir, `too-long-${downloader}`);
    const before = registry.servedBytes();
    const error = await snapshots.pullBlob(digest, 1000, dest).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_REGISTRY_DIGEST' });
    expect((error as Error).message).toContain(`has ${BLOB_BYTES} bytes, not the 1000 its manifest names`);
    // The body is cancelled on its headers; what the proxy counts is what filled the loopback socket's buffers meanwhile (a few MB).
    expect(registry.servedBytes() - before).toBeLessThan(BLOB_BYTES / 4);
    expect(await exists(dest)).toBe(false);
    expect(await exists(`${dest}.partial`)).toBe(false);
  });

  it('tries a read again when the registry is busy (503), and gives its answer back after a few tries', async () => {
    const snapshots = client('warmvm/chunked');
    const dest = join(dir, `busy-${downloader}`);
    const before = registry.requests().length;
    registry.setProxy({ failNext: { status: 503, count: 2 } });
    try {
      await snapshots.pullBlob(digest, BLOB_BYTES, dest);
    } finally {
      registry.setProxy({});
    }
    expect((await readFile(dest)).equals(blob)).toBe(true);
    expect(
      registry
        .requests()
        .slice(before)
        .filter((request) => request.status === 503),
    ).toHaveLength(2);
    registry.setProxy({ failNext: { status: 503, count: 10 } });
    try {
      const error = await snapshots.getManifest('busy').catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'E_REGISTRY', message: expect.stringContaining('answered HTTP 503'), hint: expect.stringContaining('try again later') });
    } finally {
      registry.setProxy({});
    }
  });

  it('says a blob the repository lacks is missing, and leaves no file', async () => {
    const dest = join(dir, `missing-${downloader}`);
    const unknown = `sha256:${'1'.repeat(64)}` as Digest;
    await expect(client('warmvm/chunked').pullBlob(unknown, 100, dest)).rejects.toMatchObject({ code: 'E_REGISTRY_MISSING' });
    expect(await exists(dest)).toBe(false);
    expect(await exists(`${dest}.partial`)).toBe(false);
  });

  it('round-trips an OCI manifest with artifactType and a custom config media type, byte for byte', async () => {
    const snapshots = client('warmvm/manifest');
    const configBytes = Buffer.from(JSON.stringify({ artifactFormat: 1, hello: 'registry' }));
    await writeFile(join(dir, 'config.json'), configBytes);
    const config = { mediaType: 'application/vnd.warmvm.snapshot.config.v1+json', digest: sha256Digest(configBytes), size: configBytes.length };
    await snapshots.pushBlob(join(dir, 'config.json'), config.digest, config.size);
    const layer = await randomBlob('layer', 1 << 20);
    await snapshots.pushBlob(layer.file, layer.digest, layer.data.length);
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      artifactType: 'application/vnd.warmvm.snapshot.v1',
      config,
      layers: [
        { mediaType: 'application/vnd.warmvm.snapshot.file.v1+zstd', digest: layer.digest, size: layer.data.length, annotations: { 'org.opencontainers.image.title': 'memory' } },
      ],
      annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
    };
    const body = Buffer.from(JSON.stringify(manifest, null, 1));

    const pushed = await snapshots.putManifest('web-1', body, OCI_MANIFEST_MEDIA_TYPE);
    expect(pushed).toBe(sha256Digest(body));
    const byTag = await snapshots.getManifest('web-1');
    expect(byTag).toEqual({ body, mediaType: OCI_MANIFEST_MEDIA_TYPE, digest: pushed });
    expect(JSON.parse(byTag.body.toString('utf8'))).toMatchObject({ artifactType: 'application/vnd.warmvm.snapshot.v1', config: { mediaType: config.mediaType } });
    expect((await snapshots.getManifest(pushed)).body.equals(body)).toBe(true);
    expect((await snapshots.getBlob(config.digest, 1 << 20)).equals(configBytes)).toBe(true);
    await expect(snapshots.getBlob(layer.digest, 1000)).rejects.toMatchObject({ code: 'E_REGISTRY', message: expect.stringContaining('more than the 1000') });
    // Put under its digest too (no tag).
    expect(await snapshots.putManifest(pushed, body, OCI_MANIFEST_MEDIA_TYPE)).toBe(pushed);
  });

  it("says what is missing with the registry's own error code", async () => {
    const snapshots = client('warmvm/manifest');
    const error = await snapshots.getManifest('no-such-tag').catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_REGISTRY_MISSING' });
    expect(describeError(error)).toMatch(
      /^the download of manifest no-such-tag from 127\.0\.0\.1:\d+\/warmvm\/manifest failed: the registry 127\.0\.0\.1:\d+ answered HTTP 404 Not Found, MANIFEST_UNKNOWN: manifest unknown\n {2}fix: /,
    );
    const unknown = `sha256:${'0'.repeat(64)}` as Digest;
    expect(await snapshots.hasBlob(unknown)).toBe(false);
    await expect(snapshots.getBlob(unknown, 100)).rejects.toMatchObject({ code: 'E_REGISTRY_MISSING', message: expect.stringContaining('BLOB_UNKNOWN: blob unknown to registry') });
    // A manifest naming a blob the repository lacks: the registry's refusal, passed on.
    const orphan = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST_MEDIA_TYPE, config: { mediaType: 'application/json', digest: unknown, size: 2 }, layers: [] }),
    );
    await expect(snapshots.putManifest('orphan', orphan, OCI_MANIFEST_MEDIA_TYPE)).rejects.toMatchObject({
      code: 'E_REGISTRY',
      message: expect.stringContaining('HTTP 400 Bad Request, MANIFEST_BLOB_UNKNOWN'),
    });
  });

  it('names the system error, kept as the cause, when nothing listens', async () => {
    const stopped = await registries();
    await stopped.stop();
    const gone = new RegistryClient(parseReference(`${stopped.registry}/warmvm/gone`), { credentials: null });
    const error = await gone.hasBlob(digest).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_REGISTRY_UNREACHABLE' });
    expect((error as Error).message).toBe(`could not reach ${stopped.registry} for the check for blob ${digest} in ${stopped.registry}/warmvm/gone (ECONNREFUSED)`);
    expect(describeError(error)).toContain('caused by: connect ECONNREFUSED');
  });
});

describe('the URL a client uses', () => {
  it('is HTTPS for any host but this machine, which gets plain HTTP as Docker does', () => {
    expect(registryBaseUrl(parseReference('example.com:5000/warmvm/snapshots'))).toBe('https://example.com:5000');
    expect(new RegistryClient(parseReference('example.com:5000/warmvm/snapshots')).baseUrl).toBe('https://example.com:5000');
    expect(registryBaseUrl(parseReference('ghcr.io/acme/snapshots:web'))).toBe('https://ghcr.io');
    expect(registryBaseUrl(parseReference('docker.io/acme/snapshots'))).toBe('https://registry-1.docker.io');
    expect(registryBaseUrl(parseReference('127.0.0.1.example.com/acme/x'))).toBe('https://127.0.0.1.example.com');
    expect(registryBaseUrl(parseReference('localhost.example.com:5000/acme/x'))).toBe('https://localhost.example.com:5000');
    expect(registryBaseUrl(parseReference('10.0.0.1:5000/acme/x'))).toBe('https://10.0.0.1:5000');
    expect(registryBaseUrl(parseReference('localhost:5000/acme/x'))).toBe('http://localhost:5000');
    expect(registryBaseUrl(parseReference('127.0.0.1:5000/acme/x'))).toBe('http://127.0.0.1:5000');
    expect(registryBaseUrl(parseReference('127.1.2.3:5000/acme/x'))).toBe('http://127.1.2.3:5000');
    expect(registryBaseUrl(parseReference('[::1]:5000/acme/x'))).toBe('http://[::1]:5000');
  });

  it.runIf(externalAddress() !== undefined)('never speaks plain HTTP to a registry on another address, even when that is all it serves', async () => {
    const seen: string[] = [];
    const plain = http.createServer((request, response) => {
      seen.push(`${request.method} ${request.url}`);
      response.end('{}');
    });
    await new Promise<void>((resolve) => plain.listen(0, '0.0.0.0', resolve));
    try {
      const port = (plain.address() as AddressInfo).port;
      const address = externalAddress() as string;
      const remote = new RegistryClient(parseReference(`${address}:${port}/warmvm/plain`), { credentials: null });
      expect(remote.baseUrl).toBe(`https://${address}:${port}`);
      const error = await remote.hasBlob(digest).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'E_REGISTRY_UNREACHABLE', hint: expect.stringContaining('did not answer with valid HTTPS') });
      expect(seen).toEqual([]);
    } finally {
      plain.closeAllConnections();
      await new Promise((resolve) => plain.close(resolve));
    }
  });

  it('knows loopback addresses in their other spellings', () => {
    for (const host of ['localhost', 'LOCALHOST', '127.0.0.1', '127.255.255.254', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['example.com', '128.0.0.1', '10.0.0.1', '::2', '::ffff:10.0.0.1', 'localhost.example.com', '127.0.0.1.nip.io'])
      expect(isLoopbackHost(host), host).toBe(false);
  });
});
