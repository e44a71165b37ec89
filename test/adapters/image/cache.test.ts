import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureUrlImage, type UrlImageSource } from '../../../adapters/image/cache.js';
import { WarmvmError } from '../../../adapters/support/errors.js';
import { type FileServer, startFileServer } from '../../helpers/file-server.js';
import { useTempDirs } from '../../helpers/temp.js';

/*
 * The image downloader against a real HTTP server on 127.0.0.1 (test/helpers/file-server.ts),
 * with real files, real xz and zstd commands and real qcow2 images from qemu-img.
 */

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The downloader as another process runs it: the built dist/ (a lock taken by this very process would be its own). */
const BUILT_CACHE = join(ROOT, 'dist', 'adapters', 'image', 'cache.js');
const tempDir = useTempDirs('wvm-img-');
const servers: FileServer[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** A qcow2 image with 2 MiB of random data in it: large enough to cut midway. */
async function qcow2Image(dir: string, name = 'disk.qcow2'): Promise<string> {
  const raw = join(dir, 'data.raw');
  await writeFile(raw, Buffer.concat([randomBytes(2 << 20), Buffer.alloc(1 << 20)]));
  const path = join(dir, name);
  await execFileAsync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, path]);
  return path;
}

async function digestOf(file: string, algorithm: 'sha256' | 'sha512' = 'sha256'): Promise<{ algorithm: 'sha256' | 'sha512'; hex: string }> {
  return {
    algorithm,
    hex: createHash(algorithm)
      .update(await readFile(file))
      .digest('hex'),
  };
}

/** Compared as buffers: a deep equality over megabytes takes seconds. */
async function sameBytes(a: string, b: string): Promise<boolean> {
  return (await readFile(a)).equals(await readFile(b));
}

async function serve(file: string, etag?: string): Promise<FileServer> {
  const server = await startFileServer(file, { etag });
  servers.push(server);
  return server;
}

/** What the images folder holds, the partial files and locks included. */
async function imagesListing(imagesDir: string): Promise<string[]> {
  return (await readdir(imagesDir, { recursive: true }).catch(() => [] as string[])).sort();
}

async function setUp(options: { algorithm?: 'sha256' | 'sha512' } = {}) {
  const dir = await tempDir();
  const image = await qcow2Image(dir);
  const server = await serve(image);
  const source: UrlImageSource = { url: server.url('/images/disk.qcow2'), digest: await digestOf(image, options.algorithm), format: 'qcow2', compression: undefined };
  return { dir, image, server, source, imagesDir: join(dir, 'images') };
}

describe('a disk image from a URL', () => {
  it('is downloaded once into images/ by its digest, reported as it goes; a second call is served from the cache without a request', async () => {
    const { image, server, source, imagesDir } = await setUp();
    const progress: [string, number, number][] = [];
    const first = await ensureUrlImage(source, { imagesDir, onProgress: (what, done, total) => progress.push([what, done, total]) });
    expect(first).toEqual({ path: join(imagesDir, `url-sha256-${source.digest.hex}`, 'disk.qcow2'), dir: `url-sha256-${source.digest.hex}`, downloaded: true });
    expect(await sameBytes(first.path, image)).toBe(true);
    const size = (await stat(image)).size;
    expect(progress.at(-1)).toEqual(['downloading disk.qcow2', size, size]);
    // Published whole: no partial file, validators or lock left beside it.
    expect(await imagesListing(imagesDir)).toEqual([first.dir, join(first.dir, 'disk.qcow2')]);
    expect(server.requests).toHaveLength(1);

    const second = await ensureUrlImage(source, { imagesDir });
    expect(second).toEqual({ ...first, downloaded: false });
    expect(server.requests).toHaveLength(1);
  });

  it('takes a sha512 digest', async () => {
    const { image, source, imagesDir } = await setUp({ algorithm: 'sha512' });
    const got = await ensureUrlImage(source, { imagesDir });
    expect(got.dir).toBe(`url-sha512-${source.digest.hex}`);
    expect(source.digest.hex).toHaveLength(128);
    expect(await sameBytes(got.path, image)).toBe(true);
  });

  it('continues a connection cut midway with Range from what arrived, and gets the whole file', async () => {
    const { image, server, source, imagesDir } = await setUp();
    const size = (await stat(image)).size;
    server.behaviour.cuts.push(Math.floor(size / 2));
    const got = await ensureUrlImage(source, { imagesDir, retryDelayMs: 1 });
    expect(await sameBytes(got.path, image)).toBe(true);
    expect(server.requests.map((request) => request.status)).toEqual([200, 206]);
    const from = Number(/^bytes=(\d+)-$/.exec(server.requests[1]?.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(Math.floor(size / 2));
    // Continued under the first answer's validator: a changed file would come whole.
    expect(server.requests[1]?.ifRange).toBe('"v1"');
  });

  it('starts over when the server ignores Range and sends the whole file again', async () => {
    const { image, server, source, imagesDir } = await setUp();
    server.behaviour.ignoreRange = true;
    server.behaviour.cuts.push(Math.floor((await stat(image)).size / 2));
    const got = await ensureUrlImage(source, { imagesDir, retryDelayMs: 1 });
    expect(await sameBytes(got.path, image)).toBe(true);
    expect(server.requests.map((request) => [request.status, request.range !== undefined])).toEqual([
      [200, false],
      [200, true],
    ]);
  });

  it('a file changed on the server since the cut comes whole (If-Range on the ETag), not spliced onto the old part', async () => {
    const { dir, image, server, source, imagesDir } = await setUp();
    // The first attempt gets half of an older file (ETag "v1") and is cut; the tries run out.
    const old = await qcow2Image(dir, 'old.qcow2');
    server.behaviour.file = old;
    server.behaviour.cuts.push(Math.floor((await stat(old)).size / 2));
    await expect(ensureUrlImage(source, { imagesDir, attempts: 1 })).rejects.toMatchObject({ code: 'E_IMAGE_DOWNLOAD', hint: expect.stringContaining('continues') });
    expect((await imagesListing(imagesDir)).filter((name) => name.endsWith('.partial'))).toHaveLength(1);
    // Now the server has the file the digest names, under another ETag.
    server.behaviour.file = image;
    server.behaviour.etag = '"v2"';
    const got = await ensureUrlImage(source, { imagesDir, attempts: 1 });
    expect(await sameBytes(got.path, image)).toBe(true);
    expect(server.requests.slice(1).map((request) => ({ ifRange: request.ifRange, status: request.status }))).toEqual([{ ifRange: '"v1"', status: 200 }]);
  });

  it('refuses a file whose digest is not the one given, naming both, and keeps nothing of it', async () => {
    const { server, source, imagesDir } = await setUp();
    const wanted = { algorithm: 'sha256' as const, hex: 'ab'.repeat(32) };
    const error = await ensureUrlImage({ ...source, digest: wanted }, { imagesDir }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WarmvmError);
    expect(error).toMatchObject({ code: 'E_IMAGE_DIGEST' });
    expect((error as Error).message).toContain(`sha256:${wanted.hex}`);
    expect((error as Error).message).toContain(`sha256:${source.digest.hex}`);
    expect(await imagesListing(imagesDir)).toEqual([]);
    expect(server.requests).toHaveLength(1);
  });

  it('unpacks an xz-compressed image (the xz command) and a zstd-compressed one (zstd-napi), named by the digest of what was downloaded', async () => {
    const dir = await tempDir();
    const image = await qcow2Image(dir);
    await execFileAsync('xz', ['-k', '-T1', image]);
    await execFileAsync('zstd', ['-q', '-k', image, '-o', `${image}.zst`]);
    for (const [suffix, compression] of [
      ['.xz', 'xz'],
      ['.zst', 'zstd'],
    ] as const) {
      const server = await serve(`${image}${suffix}`);
      const source: UrlImageSource = { url: server.url(`/disk.qcow2${suffix}`), digest: await digestOf(`${image}${suffix}`), format: 'qcow2', compression };
      const progress: string[] = [];
      const got = await ensureUrlImage(source, { imagesDir: join(dir, 'images'), onProgress: (what) => progress.push(what) });
      expect(await sameBytes(got.path, image)).toBe(true);
      expect(got.dir).toBe(`url-sha256-${source.digest.hex}`);
      expect(new Set(progress)).toEqual(new Set([`downloading disk.qcow2${suffix}`, `unpacking disk.qcow2${suffix}`]));
    }
    // The downloads went once unpacked.
    expect((await imagesListing(join(dir, 'images'))).filter((name) => name.includes('.partial'))).toEqual([]);
  });

  it('refuses a file that is not the format the config says, and keeps the download for the corrected config', async () => {
    const { server, source, imagesDir } = await setUp();
    await expect(ensureUrlImage({ ...source, format: 'raw' }, { imagesDir })).rejects.toMatchObject({
      code: 'E_IMAGE_FORMAT',
      message: expect.stringContaining('is a qcow2 image, where image.format says raw'),
      hint: 'set image.format to "qcow2"',
    });
    await expect(ensureUrlImage({ ...source, compression: 'xz' }, { imagesDir })).rejects.toMatchObject({ code: 'E_IMAGE_DECOMPRESS', message: expect.stringContaining('as xz') });
    expect((await ensureUrlImage(source, { imagesDir })).downloaded).toBe(true);
    expect(server.requests).toHaveLength(1);
  });

  it('a 404 and a refused connection fail with what to fix', async () => {
    const { server, source, imagesDir } = await setUp();
    server.behaviour.statuses.push(404);
    await expect(ensureUrlImage(source, { imagesDir })).rejects.toMatchObject({
      code: 'E_IMAGE_DOWNLOAD',
      message: expect.stringContaining('answered 404'),
      hint: expect.stringContaining('check image.url'),
    });
    const port = new URL(server.url('/')).port;
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    await expect(ensureUrlImage(source, { imagesDir })).rejects.toMatchObject({
      code: 'E_IMAGE_DOWNLOAD',
      message: expect.stringMatching(new RegExp(`connection to 127\\.0\\.0\\.1:${port} was refused \\(ECONNREFUSED\\)`)),
      hint: expect.stringContaining('is up and that image.url is right'),
    });
    expect(await imagesListing(imagesDir)).toEqual([]);
  });

  it('tries a 5xx again, and gives up after its tries with the status named', async () => {
    const { image, server, source, imagesDir } = await setUp();
    server.behaviour.statuses.push(503, 502);
    const got = await ensureUrlImage(source, { imagesDir, retryDelayMs: 1 });
    expect(await sameBytes(got.path, image)).toBe(true);
    expect(server.requests.map((request) => request.status)).toEqual([503, 502, 200]);
    server.behaviour.statuses.push(500, 500);
    await expect(ensureUrlImage({ ...source, digest: { algorithm: 'sha512', hex: '0'.repeat(128) } }, { imagesDir, attempts: 2, retryDelayMs: 1 })).rejects.toMatchObject({
      code: 'E_IMAGE_DOWNLOAD',
      message: expect.stringContaining('answered 500 Internal Server Error (2 tries)'),
    });
  });

  it('an interrupted download keeps its partial file, and the next call continues it with Range', async () => {
    const { image, server, source, imagesDir } = await setUp();
    let release = () => {};
    server.behaviour.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    const controller = new AbortController();
    const interrupted = ensureUrlImage(source, {
      imagesDir,
      signal: controller.signal,
      // Interrupted once part of it is on disk, the rest held back by the server.
      onProgress: (_what, done) => {
        if (done > 0) controller.abort(new Error('Ctrl-C'));
      },
    });
    await expect(interrupted).rejects.toMatchObject({ code: 'E_ABORTED' });
    release();
    const partial = (await imagesListing(imagesDir)).find((name) => name.endsWith('.partial')) as string;
    expect((await stat(join(imagesDir, partial))).size).toBeGreaterThan(0);
    // Nothing holds the lock any more.
    expect((await imagesListing(imagesDir)).filter((name) => name.startsWith('.lock-'))).toEqual([]);
    const got = await ensureUrlImage(source, { imagesDir });
    expect(await sameBytes(got.path, image)).toBe(true);
    expect(server.requests[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('an untrusted HTTPS certificate fails with NODE_EXTRA_CA_CERTS as the fix', async () => {
    const dir = await tempDir();
    const image = await qcow2Image(dir);
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await execFileAsync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    const server = await startFileServer(image, { tls: { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') } });
    servers.push(server);
    const source: UrlImageSource = { url: server.url('/disk.qcow2'), digest: await digestOf(image), format: 'qcow2', compression: undefined };
    await expect(ensureUrlImage(source, { imagesDir: join(dir, 'images') })).rejects.toMatchObject({
      code: 'E_IMAGE_DOWNLOAD',
      message: expect.stringContaining('is not trusted here (DEPTH_ZERO_SELF_SIGNED_CERT)'),
      hint: expect.stringContaining('NODE_EXTRA_CA_CERTS=/path/to/ca.pem'),
    });
  });

  it('never prints a signed URL’s query (its token) in an error', async () => {
    const { server, source, imagesDir } = await setUp();
    server.behaviour.statuses.push(403);
    const error = (await ensureUrlImage({ ...source, url: `${source.url}?X-Signature=secret-token` }, { imagesDir }).catch((caught: unknown) => caught)) as WarmvmError;
    expect(error.message).toContain('/images/disk.qcow2?…');
    expect(JSON.stringify({ message: error.message, hint: error.hint })).not.toContain('secret-token');
  });

  it('two processes downloading one image at once make one request: the second waits for the first, then uses its file', async () => {
    for (const source of ['cache.ts', 'download.ts', 'unpack.ts', 'disk-format.ts']) {
      const [builtAt, sourceAt] = await Promise.all([
        stat(BUILT_CACHE).then(
          (found) => found.mtimeMs,
          () => undefined,
        ),
        stat(join(ROOT, 'adapters', 'image', source)).then((found) => found.mtimeMs),
      ]);
      if (builtAt === undefined || builtAt < sourceAt) throw new Error(`${BUILT_CACHE} is missing or older than adapters/image/${source}: run npm run build first`);
    }
    const { image, server, source, imagesDir } = await setUp();
    let release = () => {};
    server.behaviour.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The child's own script: its output lines, WAIT (another holds the lock) and DONE (the result).
    const script = [
      `const { ensureUrlImage } = await import(${JSON.stringify(pathToFileURL(BUILT_CACHE).href)});`,
      "const got = await ensureUrlImage(JSON.parse(process.argv[1]), { imagesDir: process.argv[2], onWait: (line) => console.log('WAIT ' + line) });",
      "console.log('DONE ' + JSON.stringify(got));",
    ].join('\n');
    const run = () => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(source), imagesDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      const result = { stdout: '', stderr: '', exit: new Promise<number | null>((resolve) => child.once('close', resolve)) };
      child.stdout.setEncoding('utf8').on('data', (text: string) => {
        result.stdout += text;
      });
      child.stderr.setEncoding('utf8').on('data', (text: string) => {
        result.stderr += text;
      });
      return result;
    };
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    const first = run();
    // The first holds the lock and is halfway through its download when the second starts.
    await until(() => server.requests.length === 1);
    const second = run();
    await until(() => second.stdout.includes('WAIT') || first.stdout.includes('DONE'));
    expect(second.stdout).toMatch(/^WAIT another warmvm \(pid \d+\) is downloading http:\/\/127\.0\.0\.1:\d+\/images\/disk\.qcow2: waiting for it$/m);
    release();
    expect(await first.exit, first.stderr).toBe(0);
    expect(await second.exit, second.stderr).toBe(0);
    const done = (output: string) => JSON.parse(/^DONE (.*)$/m.exec(output)?.[1] ?? '{}') as { path: string; downloaded: boolean };
    expect(done(first.stdout)).toMatchObject({ downloaded: true });
    expect(done(second.stdout)).toEqual({ ...done(first.stdout), downloaded: false });
    expect(server.requests).toHaveLength(1);
    expect(await sameBytes(done(first.stdout).path, image)).toBe(true);
  });
});
