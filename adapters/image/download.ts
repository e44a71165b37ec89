import { createHash, type Hash } from 'node:crypto';
import { type FileHandle, open, readFile, rm, stat } from 'node:fs/promises';
import type { Logger } from '../support/logger.js';
import { writeFileDurably } from '../support/durable.js';
import { abortError, WarmvmError } from '../support/errors.js';
import { silentLogger } from '../support/logger.js';
import { sleep } from '../support/sleep.js';
import { isCutConnection, statusError, unreachableError } from './http-errors.js';
import type { ImageDigest } from './names.js';
import { shownUrl } from './shown-url.js';

/*
 * One file over HTTP(S) into a partial file, hashed on the way, with Node's own fetch (undici): it
 * is built in, streams the body, takes an AbortSignal, and its errors carry the system's and the
 * TLS layer's codes (ECONNREFUSED, SELF_SIGNED_CERT_IN_CHAIN) for a precise message.
 *
 * A cut download is continued with `Range` from what the partial file holds, under `If-Range`
 * with the validator of the answer that began it (a strong ETag, else Last-Modified; both kept in
 * a small file beside), so a file changed on the server comes whole instead of spliced. A server
 * that ignores Range, or whose file changed, answers 200: the download starts over. A cut
 * connection or a 5xx is tried again a few times, with a growing wait; the digest decides at the
 * end, and a file that does not match is deleted.
 */

export interface DownloadOptions {
  signal?: AbortSignal;
  /** Bytes in the partial file so far, and the file's size (0 while unknown). */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  logger?: Logger;
  /** Requests of one download before a cut connection or a 5xx is final: 4 unless told. */
  attempts?: number;
  /** The wait before the first retry, doubled before each next one: 1 s unless told. */
  retryDelayMs?: number;
}

/** What the partial file was started from: a continuation must come from the same file. */
interface Validators {
  /** sha256 of the URL: a signed URL's token is not written down. */
  url: string;
  etag: string | undefined;
  lastModified: string | undefined;
}

const DEFAULT_ATTEMPTS = 4;
const DEFAULT_RETRY_DELAY_MS = 1000;
/** Received bytes are gathered into writes of about this size. */
const WRITE_BYTES = 1 << 20;
/** A kept partial file is read back into the hash in pieces of this size. */
const READ_BYTES = 4 << 20;

/** The file beside a partial download that holds its validators. */
export function validatorsFile(partial: string): string {
  return `${partial}.json`;
}

/**
 * Downloads `url` into `partial` until it is whole and hashes to `digest`; returns its size. A
 * partial file already there is continued. A continued download that does not match is tried once
 * more from the start (the kept part may be the bad one) before it is refused; a refused file is
 * deleted, so nothing of it is used or kept.
 */
export async function downloadVerified(url: string, partial: string, digest: ImageDigest, options: DownloadOptions = {}): Promise<number> {
  const continued = (await fileSize(partial)) > 0;
  try {
    return await downloadOnce(url, partial, digest, options);
  } catch (error) {
    if (!continued || !(error instanceof WarmvmError) || error.code !== 'E_IMAGE_DIGEST') throw error;
    (options.logger ?? silentLogger).debug({ url: shownUrl(url) }, 'the continued download does not match its digest: downloading it whole');
    return await downloadOnce(url, partial, digest, options);
  }
}

async function downloadOnce(url: string, partial: string, digest: ImageDigest, options: DownloadOptions): Promise<number> {
  const { signal, onProgress } = options;
  const logger = options.logger ?? silentLogger;
  const shown = shownUrl(url);
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  const retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;

  let have = await fileSize(partial);
  let validators = have > 0 ? await readValidators(partial) : undefined;
  // A partial file of another URL (or with no record of its source) is not continued.
  if (have > 0 && validators?.url !== urlKey(url)) {
    have = 0;
    validators = undefined;
  }
  const handle = await open(partial, have > 0 ? 'r+' : 'w');
  let hash = createHash(digest.algorithm);
  let total: number | undefined;
  let finished = false;
  try {
    if (have > 0) await hashPrefix(handle, have, hash, signal, shown);
    else await handle.truncate(0);
    // A partial file that is the whole file already (its digest proves it; its unpacking was refused) needs no request.
    let whole = have > 0 && hash.copy().digest('hex') === digest.hex;
    for (let failures = 0; !whole; ) {
      try {
        const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'warmvm' };
        const ifRange = validators?.etag ?? validators?.lastModified;
        if (have > 0) {
          headers.range = `bytes=${have}-`;
          if (ifRange !== undefined) headers['if-range'] = ifRange;
        }
        const response = await fetch(url, { headers, signal, redirect: 'follow' });
        if (response.status >= 500) {
          await discard(response);
          throw new ServerFailing(response.status, response.statusText);
        }
        if (have > 0 && response.status === 416) {
          await discard(response);
          const size = /^bytes \*\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1];
          // The partial file holds the whole file already; or it holds more than the server's file: start over.
          if (size !== undefined && Number(size) === have) {
            total = have;
            whole = true;
            continue;
          }
          ({ have, hash } = await startOver(handle, digest, 'the server holds less than was downloaded', logger, shown));
          validators = undefined;
          continue;
        }
        const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers.get('content-range') ?? '');
        if (response.status === 206 && (range === null || Number(range[1]) !== have)) {
          await discard(response);
          throw new WarmvmError(
            'E_IMAGE_DOWNLOAD',
            `cannot download the image ${shown}: asked for the bytes from ${have}, the server sent ${response.headers.get('content-range') ?? 'no Content-Range'}`,
            {
              hint: 'the server answers Range requests wrongly: start again (a download from the start is tried when nothing was kept)',
            },
          );
        }
        if (response.status !== 200 && response.status !== 206) {
          await discard(response);
          throw statusError(shown, response.status, response.statusText, failures + 1);
        }
        if (response.status === 200) {
          // The whole file: the server ignored Range, the file changed (If-Range), or this is the first request.
          if (have > 0) ({ have, hash } = await startOver(handle, digest, 'the server sent the whole file (it ignored Range, or the file changed)', logger, shown));
          validators = { url: urlKey(url), etag: strongEtag(response.headers.get('etag')), lastModified: response.headers.get('last-modified') ?? undefined };
          await writeFileDurably(validatorsFile(partial), `${JSON.stringify(validators)}\n`, 0o600);
          const length = response.headers.get('content-length');
          total = length === null ? undefined : Number(length);
        } else {
          total = range?.[2] === '*' ? undefined : Number(range?.[2]);
        }
        have = await receive(response, handle, have, hash, (done) => onProgress?.(done, total ?? 0));
        whole = true;
      } catch (error) {
        if (signal?.aborted) throw abortError(signal, `the download of ${shown}`);
        const retry = error instanceof ServerFailing || (!(error instanceof WarmvmError) && isCutConnection(error));
        failures += 1;
        if (!retry || failures >= attempts) throw error instanceof ServerFailing ? statusError(shown, error.status, error.statusText, failures) : asWarmvmError(shown, error);
        // What arrived before the cut is on disk: the next request continues from it.
        have = await fileSize(partial);
        logger.debug({ url: shown, have, failures, error: String(error) }, 'the download failed: trying again');
        await sleep(retryDelayMs * 2 ** (failures - 1), signal).catch(() => {
          throw abortError(signal, `the download of ${shown}`);
        });
      }
    }
    if (total !== undefined && have !== total) {
      throw new WarmvmError('E_IMAGE_DOWNLOAD', `cannot download the image ${shown}: it ended after ${have} of ${total} bytes`, {
        hint: 'start again: the download continues where it stopped',
      });
    }
    await handle.datasync();
    finished = true;
  } finally {
    await handle.close();
    // A partial file that got nothing is no use to the next start.
    if (!finished && (await fileSize(partial)) === 0) await removePartial(partial);
  }
  const got = hash.digest('hex');
  if (got !== digest.hex) {
    await removePartial(partial);
    throw new WarmvmError(
      'E_IMAGE_DIGEST',
      `the image ${shown} has digest ${digest.algorithm}:${got}, not the ${digest.algorithm}:${digest.hex} that image.digest names; nothing of it was kept`,
      {
        hint: `if the file at that URL is the one you want, put its digest in image.digest ("${digest.algorithm}sum FILE" prints it); else the server sends other bytes than you expect`,
      },
    );
  }
  onProgress?.(have, have);
  return have;
}

/** The partial file and its validators, gone. */
export async function removePartial(partial: string): Promise<void> {
  await rm(partial, { force: true });
  await rm(validatorsFile(partial), { force: true });
}

/** A 5xx answer, tried again until the tries run out. */
class ServerFailing extends Error {
  constructor(
    readonly status: number,
    readonly statusText: string,
  ) {
    super(`the server answered ${status}`);
  }
}

function asWarmvmError(shown: string, error: unknown): WarmvmError {
  return error instanceof WarmvmError ? error : unreachableError(shown, error);
}

/** The body appended at `have`, in writes of about WRITE_BYTES; what arrived before a cut is written before the error goes on. */
async function receive(response: Response, handle: FileHandle, have: number, hash: Hash, onProgress: (done: number) => void): Promise<number> {
  let position = have;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const buffer = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await writeAll(handle, buffer, position);
    hash.update(buffer);
    position += buffer.length;
    onProgress(position);
  };
  if (response.body === null) return position;
  try {
    for await (const chunk of response.body) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BYTES) await flush();
    }
  } finally {
    await flush();
  }
  return position;
}

async function startOver(handle: FileHandle, digest: ImageDigest, why: string, logger: Logger, shown: string): Promise<{ have: number; hash: Hash }> {
  logger.debug({ url: shown }, `${why}: downloading from the start`);
  await handle.truncate(0);
  return { have: 0, hash: createHash(digest.algorithm) };
}

async function hashPrefix(handle: FileHandle, bytes: number, hash: Hash, signal: AbortSignal | undefined, shown: string): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, bytes));
  for (let position = 0; position < bytes; ) {
    if (signal?.aborted) throw abortError(signal, `the download of ${shown}`);
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, bytes - position), position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}

function urlKey(url: string): string {
  return createHash('sha256').update(url).digest('hex');
}

/** If-Range takes only a strong validator: a weak ETag (`W/"…"`) is no proof of the same bytes. */
function strongEtag(etag: string | null): string | undefined {
  return etag === null || etag.startsWith('W/') ? undefined : etag;
}

async function readValidators(partial: string): Promise<Validators | undefined> {
  try {
    const value = JSON.parse(await readFile(validatorsFile(partial), 'utf8')) as Partial<Validators>;
    if (typeof value.url !== 'string') return undefined;
    return { url: value.url, etag: value.etag ?? undefined, lastModified: value.lastModified ?? undefined };
  } catch {
    return undefined;
  }
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

async function fileSize(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? 0;
}

/** All of `buffer` at `position`: a positional write may write less than asked. */
async function writeAll(handle: FileHandle, buffer: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buffer.length) done += (await handle.write(buffer, done, buffer.length - done, position + done)).bytesWritten;
}
