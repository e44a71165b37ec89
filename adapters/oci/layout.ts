import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Header, Parser, Pax, type ReadEntry } from 'tar';
import { syncDir } from '../support/durable.js';
import { abortError, throwIfAborted, WarmvmError } from '../support/errors.js';
import {
  blobRelativePath,
  type Descriptor,
  type Digest,
  type ImageIndex,
  isDigest,
  OCI_INDEX_MEDIA_TYPE,
  OCI_LAYOUT_VERSION,
  OCI_MANIFEST_MEDIA_TYPE,
  REF_NAME_ANNOTATION,
} from './types.js';

/*
 * An OCI image layout (image-spec's image-layout.md) as one tar file: `oci-layout`, `index.json`
 * naming the image manifest under its tag, and `blobs/sha256/<hex>` for the manifest, its config
 * and every layer, each once. node-tar encodes and parses the headers: a blob over 8 GiB does not
 * fit ustar's 11 octal digits, and gets a pax `size` record (node-tar's Header says when one is
 * needed); the bytes are streamed here, so that a cancel, the progress, the flush and the
 * checking of every digest on the way in are ours.
 */

/** The most a JSON file of the layout (oci-layout, index.json, a manifest) may take: they are a few KB. */
const MAX_JSON_BYTES = 4 << 20;
/** Blobs are copied into and out of the tar in pieces of this size. */
const COPY_BYTES = 4 << 20;
/** Every entry gets this time: the same snapshot gives the same tar, byte for byte. */
const ENTRY_TIME = new Date(0);
const BLOB_ENTRY = /^blobs\/sha256\/([0-9a-f]{64})$/;
/** image-spec's grammar for `org.opencontainers.image.ref.name`. */
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

export interface LayoutOptions {
  signal?: AbortSignal;
  /** In bytes of the tar written or read. */
  onProgress?(doneBytes: number, totalBytes: number): void;
}

export interface LayoutInput {
  /** Holds `blobs/sha256/<hex>`: the manifest's, its config's and every layer's. */
  blobsDir: string;
  /** The image manifest's descriptor (its blob is in blobsDir). */
  manifest: Descriptor;
  /** The name the layout's index gives it (`org.opencontainers.image.ref.name`). */
  tag: string;
}

interface Entry {
  name: string;
  /** What goes before the data: a pax header when the ustar one cannot hold the size, then the ustar header. */
  header: Buffer;
  size: number;
  body?: Buffer;
  blobPath?: string;
}

/**
 * Writes the image whose manifest is `input.manifest`, and every blob it names, as an OCI
 * image layout tar at `file`. Written beside, flushed, renamed: `file` is the whole tar or as it was.
 */
export async function writeLayoutTar(file: string, input: LayoutInput, options: LayoutOptions = {}): Promise<void> {
  const { signal, onProgress } = options;
  throwIfAborted(signal, `writing ${file}`);
  if (!REF_NAME.test(input.tag)) {
    throw new WarmvmError('E_OCI_LAYOUT', `cannot write ${file}: "${input.tag}" is not a tag an OCI image layout can hold`, {
      hint: 'use letters and digits, with . _ - : @ + or / between them (e.g. "latest", "v1.2")',
    });
  }
  const fail = (why: string, hint = 'pack the snapshot again (a blob of it is gone or damaged)') => new WarmvmError('E_OCI_LAYOUT', `cannot write ${file}: ${why}`, { hint });
  const manifestBody = await readBlobJson(input.blobsDir, input.manifest, fail);
  const manifest = manifestBody as { config?: unknown; layers?: unknown };
  if (!isDescriptor(manifest.config) || !Array.isArray(manifest.layers) || !manifest.layers.every(isDescriptor)) {
    throw fail(`the manifest ${input.manifest.digest} has no config or layers that are descriptors`);
  }
  const blobs = new Map<Digest, Descriptor>();
  for (const descriptor of [input.manifest, manifest.config, ...manifest.layers]) if (!blobs.has(descriptor.digest)) blobs.set(descriptor.digest, descriptor);

  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: [
      {
        mediaType: input.manifest.mediaType,
        ...(input.manifest.artifactType === undefined ? {} : { artifactType: input.manifest.artifactType }),
        digest: input.manifest.digest,
        size: input.manifest.size,
        annotations: { ...input.manifest.annotations, [REF_NAME_ANNOTATION]: input.tag },
      },
    ],
  };
  const entries: Entry[] = [
    fileEntry('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }))),
    fileEntry('index.json', Buffer.from(JSON.stringify(index))),
    dirEntry('blobs/'),
    dirEntry('blobs/sha256/'),
  ];
  for (const descriptor of blobs.values()) {
    const name = blobRelativePath(descriptor.digest);
    const path = join(input.blobsDir, name);
    const found = await stat(path).catch(() => undefined);
    if (!found?.isFile()) throw fail(`the blob ${descriptor.digest} the manifest names is not at ${path}`);
    if (found.size !== descriptor.size) throw fail(`the blob ${path} is ${found.size} bytes, where the manifest says ${descriptor.size}`);
    entries.push({ name, header: headerBlocks(name, descriptor.size, 'File'), size: descriptor.size, blobPath: path });
  }
  const total = entries.reduce((sum, entry) => sum + entry.header.length + padded(entry.size), 0) + 1024;

  const temp = `${file}.tmp-${process.pid}`;
  const output = await open(temp, 'w', 0o644);
  let closed = false;
  try {
    let position = 0;
    const put = async (data: Buffer) => {
      await writeAll(output, data, position);
      position += data.length;
      onProgress?.(position, total);
    };
    const buffer = Buffer.allocUnsafe(COPY_BYTES);
    for (const entry of entries) {
      throwIfAborted(signal, `writing ${file}`);
      await put(entry.header);
      if (entry.body) await put(entry.body);
      if (entry.blobPath) await copyBlob(entry.blobPath, entry.size, buffer, put, signal, file);
      const padding = padded(entry.size) - entry.size;
      if (padding > 0) await put(Buffer.alloc(padding));
    }
    // The end of the archive: two blocks of zeros.
    await put(Buffer.alloc(1024));
    await output.datasync();
    await output.close();
    closed = true;
    throwIfAborted(signal, `writing ${file}`);
    await rename(temp, file);
    await syncDir(dirname(file));
  } catch (error) {
    if (!closed) await output.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Reads an OCI image layout tar into `blobsDir/blobs/sha256/`: each blob is checked against its
 * name while it is written (beside, then renamed), and one already there is not written again.
 * Returns the layout's index and its (first) image manifest's descriptor, once every blob that
 * manifest names is in blobsDir. Only regular files and folders are taken, and only under
 * blobsDir: an entry with `..`, an absolute path or a link is refused.
 */
export async function readLayoutTar(file: string, blobsDir: string, options: LayoutOptions = {}): Promise<{ index: ImageIndex; manifest: Descriptor }> {
  const { signal, onProgress } = options;
  throwIfAborted(signal, `reading ${file}`);
  let input: FileHandle;
  try {
    input = await open(file, 'r');
  } catch (cause) {
    throw new WarmvmError('E_OCI_LAYOUT', `cannot open ${file}`, { hint: 'check the path of the exported snapshot', cause });
  }
  const blobFolder = join(blobsDir, 'blobs', 'sha256');
  const layoutError = (why: string, cause?: unknown) =>
    new WarmvmError('E_OCI_LAYOUT', `${file} is not an OCI image layout warmvm can read: ${why}`, { hint: 'export the snapshot again ("warmvm snapshot export")', cause });
  const texts = new Map<string, Buffer>();
  const tasks: Promise<void>[] = [];
  let failure: unknown;
  let parser: Parser | undefined;
  let current: ReadEntry | undefined;
  let wake: (() => void) | undefined;
  const fail = (error: unknown) => {
    if (failure !== undefined) return;
    failure = error;
    // The parse stops, and the entry being read ends where it is: its task sees it short and cleans up.
    parser?.abort(new Error('stopped'));
    current?.end();
    wake?.();
  };

  const takeEntry = async (entry: ReadEntry): Promise<void> => {
    const name = safeName(entry, layoutError);
    if (name === undefined) return void entry.resume();
    if (name === 'oci-layout' || name === 'index.json') {
      if (entry.size > MAX_JSON_BYTES) throw layoutError(`its ${name} is ${entry.size} bytes`);
      texts.set(name, await collect(entry));
      return;
    }
    const blob = BLOB_ENTRY.exec(name);
    // Anything else (a blob under another algorithm, a file another tool adds) is not needed.
    if (!blob) return void entry.resume();
    await extractBlob(entry, `sha256:${blob[1]}` as Digest, join(blobFolder, blob[1] as string), file);
  };

  try {
    await mkdir(blobFolder, { recursive: true });
    const size = (await input.stat()).size;
    const tar = new Parser({ strict: true });
    parser = tar;
    tar.on('entry', (entry: ReadEntry) => {
      current = entry;
      const task = takeEntry(entry).catch((error: unknown) => {
        fail(error);
        // Let the parser go past it; nothing more is written.
        entry.resume();
      });
      tasks.push(task);
    });
    tar.on('error', (error: Error) => fail(layoutError(`it is not a whole tar (${error.message})`, error)));
    tar.on('drain', () => wake?.());
    const ended = new Promise<void>((resolve) => tar.on('end', resolve));
    let position = 0;
    while (failure === undefined) {
      if (signal?.aborted) throw abortError(signal, `reading ${file}`);
      const chunk = Buffer.allocUnsafe(COPY_BYTES); // new each time: the parser hands slices of it to the entries
      const { bytesRead } = await input.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0 || failure !== undefined) break;
      position += bytesRead;
      const flowing = tar.write(chunk.subarray(0, bytesRead));
      onProgress?.(position, size);
      if (!flowing && failure === undefined) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    if (failure === undefined) {
      tar.end();
      await Promise.race([ended, new Promise<void>((resolve) => (wake = resolve))]);
    }
    await Promise.allSettled(tasks);
    if (failure !== undefined) throw failure;
    if (signal?.aborted) throw abortError(signal, `reading ${file}`);
    await syncDir(blobFolder);

    const layout = parseJson(texts.get('oci-layout'), 'oci-layout', layoutError) as { imageLayoutVersion?: unknown };
    if (layout.imageLayoutVersion !== OCI_LAYOUT_VERSION) {
      throw layoutError(`its oci-layout says version ${JSON.stringify(layout.imageLayoutVersion)}, and this warmvm reads ${OCI_LAYOUT_VERSION}`);
    }
    const index = parseJson(texts.get('index.json'), 'index.json', layoutError) as ImageIndex;
    if (index.schemaVersion !== 2 || !Array.isArray(index.manifests)) throw layoutError('its index.json is not an image index (schemaVersion 2, manifests)');
    const manifest = index.manifests[0];
    if (!isDescriptor(manifest)) throw layoutError('its index.json names no manifest');
    if (manifest.mediaType !== OCI_MANIFEST_MEDIA_TYPE) throw layoutError(`its index names a ${manifest.mediaType}, not an image manifest`);
    const body = (await readBlobJson(blobsDir, manifest, (why) => layoutError(why))) as { config?: unknown; layers?: unknown };
    if (!isDescriptor(body.config) || !Array.isArray(body.layers) || !body.layers.every(isDescriptor)) {
      throw layoutError(`its manifest ${manifest.digest} has no config or layers that are descriptors`);
    }
    for (const descriptor of [body.config, ...body.layers]) {
      const found = await stat(join(blobsDir, blobRelativePath(descriptor.digest))).catch(() => undefined);
      if (!found?.isFile()) throw layoutError(`it lacks the blob ${descriptor.digest} its manifest names`);
      if (found.size !== descriptor.size) throw layoutError(`its blob ${descriptor.digest} is ${found.size} bytes, where its manifest says ${descriptor.size}`);
    }
    return { index, manifest };
  } catch (error) {
    fail(error);
    await Promise.allSettled(tasks);
    throw error;
  } finally {
    await input.close();
  }
}

/** A blob entry into its place, hashed on the way: written beside and renamed only when its contents match its name. */
async function extractBlob(entry: ReadEntry, digest: Digest, dest: string, file: string): Promise<void> {
  const present = await stat(dest).catch(() => undefined);
  // Stored blobs were checked when they came (pulled, imported or packed here).
  if (present?.isFile() && present.size === entry.size) return void entry.resume();
  const temp = `${dest}.tmp-${process.pid}`;
  const output = await open(temp, 'w', 0o644);
  let closed = false;
  try {
    const hash = createHash('sha256');
    let position = 0;
    for await (const chunk of entry) {
      hash.update(chunk);
      await writeAll(output, chunk, position);
      position += chunk.length;
    }
    const actual: Digest = `sha256:${hash.digest('hex')}`;
    if (actual !== digest) {
      throw new WarmvmError('E_OCI_DIGEST', `${file} holds a damaged blob: ${blobRelativePath(digest)} should have the digest ${digest}, and its contents have ${actual}`, {
        hint: 'the file was changed or damaged after it was exported: copy it again, or export the snapshot again',
      });
    }
    await output.datasync();
    await output.close();
    closed = true;
    await rename(temp, dest);
  } catch (error) {
    if (!closed) await output.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
}

/** The entry's name inside the layout, `undefined` for a folder; refuses one that could land outside it, a link, a device. */
function safeName(entry: ReadEntry, layoutError: (why: string) => WarmvmError): string | undefined {
  const path = entry.path;
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (path.startsWith('/') || parts.includes('..')) {
    throw layoutError(`its entry "${path}" would be written outside the layout's folder`);
  }
  if (entry.type === 'SymbolicLink' || entry.type === 'Link') throw layoutError(`its entry "${path}" is a link (to "${entry.linkpath ?? ''}"), which a layout never holds`);
  if (entry.type === 'Directory') return undefined;
  if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') throw layoutError(`its entry "${path}" is a ${entry.type}, not a file`);
  return parts.join('/');
}

async function collect(entry: ReadEntry): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer | undefined, name: string, layoutError: (why: string, cause?: unknown) => WarmvmError): unknown {
  if (body === undefined) throw layoutError(`it has no ${name}`);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw layoutError(`its ${name} is not JSON`, cause);
  }
}

/** A small JSON blob (a manifest) out of blobsDir, checked against its descriptor's digest and size. */
async function readBlobJson(blobsDir: string, descriptor: Descriptor, fail: (why: string) => WarmvmError): Promise<unknown> {
  if (!isDigest(descriptor.digest)) throw fail(`"${descriptor.digest}" is not a sha256 digest`);
  if (descriptor.size > MAX_JSON_BYTES) throw fail(`the manifest ${descriptor.digest} is ${descriptor.size} bytes`);
  const path = join(blobsDir, blobRelativePath(descriptor.digest));
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch {
    throw fail(`the manifest blob ${descriptor.digest} is not at ${path}`);
  }
  const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (body.length !== descriptor.size || actual !== descriptor.digest) {
    throw fail(`the manifest blob ${path} is ${body.length} bytes with the digest ${actual}, where its descriptor says ${descriptor.size} bytes, ${descriptor.digest}`);
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw fail(`the manifest blob ${path} is not JSON`);
  }
}

function isDescriptor(value: unknown): value is Descriptor {
  const candidate = value as Partial<Descriptor> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.mediaType === 'string' &&
    isDigest(candidate.digest) &&
    Number.isSafeInteger(candidate.size) &&
    (candidate.size as number) >= 0
  );
}

async function copyBlob(path: string, size: number, buffer: Buffer, put: (data: Buffer) => Promise<void>, signal: AbortSignal | undefined, file: string): Promise<void> {
  const input = await open(path, 'r');
  try {
    for (let done = 0; done < size; ) {
      throwIfAborted(signal, `writing ${file}`);
      const { bytesRead } = await input.read(buffer, 0, Math.min(buffer.length, size - done), done);
      if (bytesRead === 0) {
        throw new WarmvmError('E_OCI_LAYOUT', `cannot write ${file}: the blob ${path} became shorter (${done} of ${size} bytes) while it was copied`, {
          hint: 'nothing may change the blob folder during an export: export again',
        });
      }
      await put(buffer.subarray(0, bytesRead));
      done += bytesRead;
    }
  } finally {
    await input.close();
  }
}

function fileEntry(name: string, body: Buffer): Entry {
  return { name, header: headerBlocks(name, body.length, 'File'), size: body.length, body };
}

function dirEntry(name: string): Entry {
  return { name, header: headerBlocks(name, 0, 'Directory'), size: 0 };
}

/** The ustar header of an entry, after a pax header when a field (the size of a blob over 8 GiB) does not fit it. */
export function headerBlocks(name: string, size: number, type: 'File' | 'Directory'): Buffer {
  const header = new Header({ path: name, mode: type === 'File' ? 0o644 : 0o755, uid: 0, gid: 0, size, mtime: ENTRY_TIME, type, uname: '', gname: '' });
  const block = Buffer.alloc(512);
  const needPax = header.encode(block);
  return needPax ? Buffer.concat([new Pax({ path: name, size, mtime: ENTRY_TIME }).encode(), block]) : block;
}

function padded(size: number): number {
  return Math.ceil(size / 512) * 512;
}

async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
