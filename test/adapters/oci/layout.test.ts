import { createHash, randomBytes } from 'node:crypto';
import { existsSync, truncateSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Header, Parser } from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { headerBlocks, readLayoutTar, writeLayoutTar } from '../../../adapters/oci/layout.js';
import { blobRelativePath, type Descriptor, type Digest, OCI_MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION } from '../../../adapters/oci/types.js';

const made: string[] = [];
afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'oci-helper-layout-'));
  made.push(d);
  return d;
}

function digestOf(body: Buffer): Digest {
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

async function putBlob(blobsDir: string, body: Buffer, mediaType: string): Promise<Descriptor> {
  const digest = digestOf(body);
  await mkdir(join(blobsDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(blobsDir, blobRelativePath(digest)), body);
  return { mediaType, digest, size: body.length };
}

/** Two layers (one named twice), a config and the manifest, in `blobsDir`. */
async function image(blobsDir: string) {
  const memory = await putBlob(blobsDir, randomBytes(3 << 20), 'application/vnd.warmvm.snapshot.file.v1+zstd');
  // Not a multiple of 512: the tar pads it.
  const state = await putBlob(blobsDir, Buffer.alloc(1000, 'state '), 'application/vnd.warmvm.snapshot.file.v1+zstd');
  const config = await putBlob(blobsDir, Buffer.from('{"artifactFormat":1}'), 'application/vnd.warmvm.snapshot.config.v1+json');
  const body = { schemaVersion: 2, mediaType: OCI_MANIFEST_MEDIA_TYPE, config, layers: [memory, state, memory] };
  const manifest = await putBlob(blobsDir, Buffer.from(JSON.stringify(body)), OCI_MANIFEST_MEDIA_TYPE);
  return { memory, state, config, manifest: { ...manifest, artifactType: 'application/vnd.warmvm.snapshot.v1' } };
}

/** Where an entry's header starts in a tar we wrote (names are short: in the ustar header's name field). */
function headerOffset(tar: Buffer, name: string): number {
  for (let at = 0; at + 512 <= tar.length; at += 512) {
    if (
      tar
        .subarray(at, at + 100)
        .toString('latin1')
        .replace(/\0.*$/s, '') === name
    )
      return at;
  }
  throw new Error(`no entry ${name}`);
}

/** A tar entry, as any tar writer would make it. */
function entry(path: string, body: Buffer, fields: { type?: 'File' | 'SymbolicLink' | 'Link'; linkpath?: string } = {}): Buffer {
  const block = Buffer.alloc(512);
  const link = fields.type === 'SymbolicLink' || fields.type === 'Link';
  new Header({ path, mode: 0o644, size: link ? 0 : body.length, mtime: new Date(0), type: fields.type ?? 'File', linkpath: fields.linkpath }).encode(block);
  if (link) return block;
  return Buffer.concat([block, body, Buffer.alloc(Math.ceil(body.length / 512) * 512 - body.length)]);
}

/** The tar with `extra` entries put before its end blocks. */
function withEntries(tar: Buffer, ...extra: Buffer[]): Buffer {
  return Buffer.concat([tar.subarray(0, tar.length - 1024), ...extra, Buffer.alloc(1024)]);
}

describe('OCI image layout tar', () => {
  it('writes oci-layout, index.json and each blob once, as tar and jq read them, and reads it back into another folder', async () => {
    const d = await dir();
    const source = join(d, 'home');
    const { memory, state, config, manifest } = await image(source);
    const file = join(d, 'snap.tar');
    const progress: [number, number][] = [];
    await writeLayoutTar(file, { blobsDir: source, manifest, tag: 'v1.2' }, { onProgress: (done, total) => progress.push([done, total]) });
    const size = (await stat(file)).size;
    expect(progress.at(-1)).toEqual([size, size]);
    expect((await readdir(d)).sort()).toEqual(['home', 'snap.tar']);

    const listed = (await execa('tar', ['-tf', file])).stdout.split('\n');
    const blobs = [manifest, config, memory, state].map((blob) => blobRelativePath(blob.digest));
    expect(listed).toEqual(['oci-layout', 'index.json', 'blobs/', 'blobs/sha256/', ...blobs]);

    // What another tool sees: GNU tar unpacks it, jq reads the index, every blob has its digest.
    const unpacked = join(d, 'unpacked');
    await mkdir(unpacked);
    await execa('tar', ['-xf', file, '-C', unpacked]);
    expect(JSON.parse(await readFile(join(unpacked, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect((await execa('jq', ['-r', `.manifests[0].annotations["${REF_NAME_ANNOTATION}"]`, join(unpacked, 'index.json')])).stdout).toBe('v1.2');
    expect(
      (await execa('jq', ['-r', '.schemaVersion, .mediaType, .manifests[0].digest, .manifests[0].size, (.manifests | length)', join(unpacked, 'index.json')])).stdout.split('\n'),
    ).toEqual(['2', 'application/vnd.oci.image.index.v1+json', manifest.digest, String(manifest.size), '1']);
    const sums = (await execa('sha256sum', blobs, { cwd: unpacked })).stdout.split('\n');
    expect(sums.map((line) => `sha256:${line.split(' ')[0]}`)).toEqual([manifest, config, memory, state].map((blob) => blob.digest));

    const target = join(d, 'other');
    const read = await readLayoutTar(file, target);
    expect(read.manifest).toEqual({ ...manifest, annotations: { [REF_NAME_ANNOTATION]: 'v1.2' } });
    expect(read.index).toMatchObject({ schemaVersion: 2, manifests: [read.manifest] });
    for (const blob of [manifest, config, memory, state]) {
      expect((await readFile(join(target, blobRelativePath(blob.digest)))).equals(await readFile(join(source, blobRelativePath(blob.digest))))).toBe(true);
    }
    expect((await readdir(join(target, 'blobs', 'sha256'))).sort()).toEqual([manifest, config, memory, state].map((blob) => blob.digest.slice(7)).sort());

    // Read again: the blobs there are kept, not written again.
    const inode = (await stat(join(target, blobRelativePath(memory.digest)))).ino;
    await readLayoutTar(file, target);
    expect((await stat(join(target, blobRelativePath(memory.digest)))).ino).toBe(inode);
  });

  it('puts a pax size record before the header of a blob over 8 GiB, which GNU tar and node-tar read back', async () => {
    const d = await dir();
    const big = 9 * 2 ** 30 + 3;
    const name = blobRelativePath(`sha256:${'ab'.repeat(32)}`);
    const header = headerBlocks(name, big, 'File');
    // A pax header (its own header block, then the records), then the ustar header.
    expect(header.length).toBe(3 * 512);
    expect(header.subarray(156, 157).toString('latin1')).toBe('x');
    expect(header.subarray(512, 1024).toString('latin1')).toContain(`size=${big}\n`);
    expect(headerBlocks(name, 8 * 2 ** 30 - 1, 'File').length).toBe(512);

    // A sparse tar with that entry's data all hole: GNU tar lists it (seeking past the data).
    const file = join(d, 'big.tar');
    const handle = await open(file, 'w');
    await handle.write(header, 0, header.length, 0);
    await handle.truncate(header.length + Math.ceil(big / 512) * 512 + 1024);
    await handle.close();
    const listed = (await execa('tar', ['-tvf', file])).stdout;
    expect(listed).toMatch(new RegExp(`\\b${big}\\b.*${name}$`));

    const sizes: number[] = [];
    const parser = new Parser({ onReadEntry: (entry) => sizes.push(entry.size) });
    parser.write(Buffer.concat([header, Buffer.alloc(512)]));
    expect(sizes).toEqual([big]);
  });

  it('refuses a tar whose blob does not match its digest, naming both, and keeps nothing of it', async () => {
    const d = await dir();
    const { memory, manifest } = await image(join(d, 'home'));
    const file = join(d, 'snap.tar');
    await writeLayoutTar(file, { blobsDir: join(d, 'home'), manifest, tag: 'latest' });
    const tar = await readFile(file);
    const at = headerOffset(tar, blobRelativePath(memory.digest)) + 512 + 1000;
    tar[at] = (tar[at] ?? 0) ^ 0xff;
    await writeFile(join(d, 'tampered.tar'), tar);
    const target = join(d, 'other');
    const error = await readLayoutTar(join(d, 'tampered.tar'), target).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'E_OCI_DIGEST', message: expect.stringContaining(`should have the digest ${memory.digest}, and its contents have sha256:`) });
    expect((error as Error).message).toContain(join(d, 'tampered.tar'));
    expect(existsSync(join(target, blobRelativePath(memory.digest)))).toBe(false);
    expect((await readdir(join(target, 'blobs', 'sha256'))).filter((name) => name.includes('.tmp-'))).toEqual([]);
  });

  it('refuses entries that would land outside the folder, and links', async () => {
    const d = await dir();
    const { manifest } = await image(join(d, 'home'));
    const file = join(d, 'snap.tar');
    await writeLayoutTar(file, { blobsDir: join(d, 'home'), manifest, tag: 'latest' });
    const tar = await readFile(file);
    const target = join(d, 'deep', 'target');
    const cases: [string, Buffer][] = [
      ['../evil', entry('../evil', Buffer.from('pwned'))],
      ['blobs/../../evil', entry('blobs/../../evil', Buffer.from('pwned'))],
      [join(d, 'abs-evil'), entry(join(d, 'abs-evil'), Buffer.from('pwned'))],
      ['blobs/sha256/link', entry('blobs/sha256/link', Buffer.alloc(0), { type: 'SymbolicLink', linkpath: '/etc/passwd' })],
      ['blobs/sha256/hard', entry('blobs/sha256/hard', Buffer.alloc(0), { type: 'Link', linkpath: 'oci-layout' })],
    ];
    for (const [name, evil] of cases) {
      await writeFile(join(d, 'evil.tar'), withEntries(tar, evil));
      await expect(readLayoutTar(join(d, 'evil.tar'), target), name).rejects.toMatchObject({
        code: 'E_OCI_LAYOUT',
        message: expect.stringContaining(name.startsWith('blobs/sha256/') ? `its entry "${name}" is a link` : `its entry "${name}" would be written outside`),
        hint: expect.stringContaining('export'),
      });
    }
    expect(existsSync(join(d, 'evil')) || existsSync(join(d, 'deep', 'evil')) || existsSync(join(d, 'abs-evil'))).toBe(false);
    expect(existsSync(join(target, 'blobs', 'sha256', 'link'))).toBe(false);
  });

  it('refuses a tar that lacks a blob its manifest names, a cut one, one of another layout version, and writes none from a folder that lacks one', async () => {
    const d = await dir();
    const home = join(d, 'home');
    const { state, manifest } = await image(home);
    const file = join(d, 'snap.tar');
    await writeLayoutTar(file, { blobsDir: home, manifest, tag: 'latest' });
    const tar = await readFile(file);

    const at = headerOffset(tar, blobRelativePath(state.digest));
    await writeFile(join(d, 'lacking.tar'), Buffer.concat([tar.subarray(0, at), tar.subarray(at + 512 + 1024)]));
    await expect(readLayoutTar(join(d, 'lacking.tar'), join(d, 'a'))).rejects.toMatchObject({
      code: 'E_OCI_LAYOUT',
      message: expect.stringContaining(`it lacks the blob ${state.digest} its manifest names`),
    });

    await writeFile(join(d, 'cut.tar'), tar.subarray(0, headerOffset(tar, blobRelativePath(state.digest)) - 100_000));
    await expect(readLayoutTar(join(d, 'cut.tar'), join(d, 'b'))).rejects.toMatchObject({ code: 'E_OCI_LAYOUT', message: expect.stringContaining('not a whole tar') });
    expect((await readdir(join(d, 'b', 'blobs', 'sha256'))).filter((name) => name.includes('.tmp-'))).toEqual([]);

    const newer = Buffer.from(tar);
    newer.write('{"imageLayoutVersion":"2.0.0"}', headerOffset(tar, 'oci-layout') + 512, 'latin1');
    await writeFile(join(d, 'newer.tar'), newer);
    await expect(readLayoutTar(join(d, 'newer.tar'), join(d, 'c'))).rejects.toMatchObject({
      code: 'E_OCI_LAYOUT',
      message: expect.stringContaining('its oci-layout says version "2.0.0", and this warmvm reads 1.0.0'),
    });

    for (const tag of ['not a tag', '', '-leading', 'a//b']) {
      await expect(writeLayoutTar(join(d, 'y.tar'), { blobsDir: home, manifest, tag }), tag).rejects.toMatchObject({
        code: 'E_OCI_LAYOUT',
        message: `cannot write ${join(d, 'y.tar')}: "${tag}" is not a tag an OCI image layout can hold`,
      });
    }
    await rm(join(home, blobRelativePath(state.digest)));
    await expect(writeLayoutTar(join(d, 'x.tar'), { blobsDir: home, manifest, tag: 'latest' })).rejects.toMatchObject({
      code: 'E_OCI_LAYOUT',
      message: expect.stringContaining(`the blob ${state.digest} the manifest names is not at`),
    });
    expect(existsSync(join(d, 'x.tar')) || existsSync(join(d, 'y.tar'))).toBe(false);
  });

  it('refuses a layout whose parts are missing or wrong, saying which', async () => {
    const d = await dir();
    const layer = Buffer.from('layer bytes');
    const config = Buffer.from('{}');
    const descriptor = (body: Buffer, mediaType = 'application/octet-stream') => ({ mediaType, digest: digestOf(body), size: body.length });
    const manifestOf = (layers: unknown) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST_MEDIA_TYPE, config: descriptor(config), layers }));
    const manifest = manifestOf([descriptor(layer)]);
    const indexOf = (manifests: unknown) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
    const blob = (body: Buffer) => entry(blobRelativePath(digestOf(body)), body);
    const layoutFile = entry('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    const index = entry('index.json', indexOf([descriptor(manifest, OCI_MANIFEST_MEDIA_TYPE)]));
    const cases: [string, Buffer[], string][] = [
      ['the whole layout', [layoutFile, index, blob(manifest), blob(config), blob(layer)], ''],
      ['no oci-layout', [index, blob(manifest), blob(config), blob(layer)], 'it has no oci-layout'],
      ['oci-layout not JSON', [entry('oci-layout', Buffer.from('1.0.0')), index, blob(manifest), blob(config), blob(layer)], 'its oci-layout is not JSON'],
      ['no index.json', [layoutFile, blob(manifest), blob(config), blob(layer)], 'it has no index.json'],
      ['index.json too large', [layoutFile, entry('index.json', Buffer.alloc((4 << 20) + 1, ' ')), blob(manifest)], `its index.json is ${(4 << 20) + 1} bytes`],
      ['not an index', [layoutFile, entry('index.json', Buffer.from('{"schemaVersion":1}')), blob(manifest)], 'its index.json is not an image index'],
      ['an index of nothing', [layoutFile, entry('index.json', indexOf([])), blob(manifest)], 'its index.json names no manifest'],
      [
        'an index of an index',
        [layoutFile, entry('index.json', indexOf([descriptor(manifest, 'application/vnd.oci.image.index.v1+json')])), blob(manifest)],
        'its index names a application/vnd.oci.image.index.v1+json, not an image manifest',
      ],
      ['no manifest blob', [layoutFile, index, blob(config), blob(layer)], `the manifest blob ${digestOf(manifest)} is not at`],
      [
        'a manifest without layers',
        [layoutFile, entry('index.json', indexOf([descriptor(manifestOf('none'), OCI_MANIFEST_MEDIA_TYPE)])), blob(manifestOf('none'))],
        'has no config or layers that are descriptors',
      ],
      [
        'a layer of another size',
        [
          layoutFile,
          entry('index.json', indexOf([descriptor(manifestOf([{ ...descriptor(layer), size: 99 }]), OCI_MANIFEST_MEDIA_TYPE)])),
          blob(manifestOf([{ ...descriptor(layer), size: 99 }])),
          blob(config),
          blob(layer),
        ],
        `its blob ${digestOf(layer)} is ${layer.length} bytes, where its manifest says 99`,
      ],
    ];
    for (const [what, entries, why] of cases) {
      const file = join(d, 'case.tar');
      await writeFile(file, Buffer.concat([...entries, Buffer.alloc(1024)]));
      const target = join(d, `into-${cases.findIndex((c) => c[0] === what)}`);
      if (why === '') {
        await expect(readLayoutTar(file, target), what).resolves.toMatchObject({ manifest: { digest: digestOf(manifest) } });
      } else {
        await expect(readLayoutTar(file, target), what).rejects.toMatchObject({ code: 'E_OCI_LAYOUT', message: expect.stringContaining(why) });
      }
    }
    // A device or a pipe is no file of a layout.
    const fifo = Buffer.alloc(512);
    new Header({ path: 'blobs/fifo', mode: 0o644, size: 0, mtime: new Date(0), type: 'FIFO' }).encode(fifo);
    await writeFile(join(d, 'fifo.tar'), Buffer.concat([layoutFile, fifo, Buffer.alloc(1024)]));
    await expect(readLayoutTar(join(d, 'fifo.tar'), join(d, 'fifo'))).rejects.toMatchObject({ code: 'E_OCI_LAYOUT', message: expect.stringContaining('is a FIFO, not a file') });
    await expect(readLayoutTar(join(d, 'absent.tar'), join(d, 'absent'))).rejects.toMatchObject({ code: 'E_OCI_LAYOUT', message: `cannot open ${join(d, 'absent.tar')}` });
  });

  it('refuses to write a layout from a folder whose manifest or blobs are not what the descriptors say', async () => {
    const d = await dir();
    const home = join(d, 'home');
    const { memory, manifest } = await image(home);
    const file = join(d, 'out.tar');
    const body = await readFile(join(home, blobRelativePath(manifest.digest)));
    const notJson = await putBlob(home, Buffer.from('not json'), OCI_MANIFEST_MEDIA_TYPE);
    const noLayers = await putBlob(home, Buffer.from('{"schemaVersion":2}'), OCI_MANIFEST_MEDIA_TYPE);
    const cases: [Descriptor, string][] = [
      [{ ...manifest, digest: 'sha256:nothex' as Digest }, '"sha256:nothex" is not a sha256 digest'],
      [{ ...manifest, size: (4 << 20) + 1 }, `the manifest ${manifest.digest} is ${(4 << 20) + 1} bytes`],
      [{ ...manifest, size: body.length - 1 }, `where its descriptor says ${body.length - 1} bytes, ${manifest.digest}`],
      [{ ...manifest, digest: `sha256:${'0'.repeat(64)}` }, `the manifest blob sha256:${'0'.repeat(64)} is not at`],
      [notJson, 'is not JSON'],
      [noLayers, 'has no config or layers that are descriptors'],
    ];
    for (const [descriptor, why] of cases) {
      await expect(writeLayoutTar(file, { blobsDir: home, manifest: descriptor, tag: 'latest' }), why).rejects.toMatchObject({
        code: 'E_OCI_LAYOUT',
        message: expect.stringContaining(why),
      });
    }
    await writeFile(join(home, blobRelativePath(memory.digest)), 'short');
    await expect(writeLayoutTar(file, { blobsDir: home, manifest, tag: 'latest' })).rejects.toMatchObject({
      code: 'E_OCI_LAYOUT',
      message: expect.stringContaining(`is 5 bytes, where the manifest says ${memory.size}`),
    });
    await writeFile(join(home, blobRelativePath(memory.digest)), randomBytes(memory.size));
    // A blob cut short while it is copied.
    const onProgress = () => truncateSync(join(home, blobRelativePath(memory.digest)), 1000);
    await expect(writeLayoutTar(file, { blobsDir: home, manifest, tag: 'latest' }, { onProgress })).rejects.toMatchObject({
      code: 'E_OCI_LAYOUT',
      message: expect.stringContaining('became shorter (1000 of'),
    });
    expect((await readdir(d)).sort()).toEqual(['home']);
  });

  it('stops writing or reading when aborted midway, leaving no tar, no partial blob and no temp file', async () => {
    const d = await dir();
    const home = join(d, 'home');
    const layer = await putBlob(home, randomBytes(24 << 20), 'application/octet-stream');
    const config = await putBlob(home, Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
    const manifest = await putBlob(home, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST_MEDIA_TYPE, config, layers: [layer] })), OCI_MANIFEST_MEDIA_TYPE);
    // Stopped within the blob, not at its end.
    let last = 0;
    const writing = new AbortController();
    const onProgress = (done: number) => {
      last = done;
      if (done > 8 << 20) writing.abort();
    };
    await expect(writeLayoutTar(join(d, 'snap.tar'), { blobsDir: home, manifest, tag: 'latest' }, { signal: writing.signal, onProgress })).rejects.toMatchObject({
      code: 'E_ABORTED',
      message: `writing ${join(d, 'snap.tar')} was cancelled`,
    });
    expect(last).toBeLessThan(16 << 20);
    expect((await readdir(d)).sort()).toEqual(['home']);

    await writeLayoutTar(join(d, 'snap.tar'), { blobsDir: home, manifest, tag: 'latest' });
    const reading = new AbortController();
    const target = join(d, 'other');
    await expect(readLayoutTar(join(d, 'snap.tar'), target, { signal: reading.signal, onProgress: (done) => done > 8 << 20 && reading.abort() })).rejects.toMatchObject({
      code: 'E_ABORTED',
    });
    expect(existsSync(join(target, blobRelativePath(layer.digest)))).toBe(false);
    expect((await readdir(join(target, 'blobs', 'sha256'))).filter((name) => name.includes('.tmp-'))).toEqual([]);
  });
});
